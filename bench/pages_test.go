package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"deployer/internal/testkit"
	"deployer/onboard"
)

// Pages settings: the testers seeded, and how many times each page is
// fetched after pagesWarmup fetches that do not count.
const (
	pagesTesters      = 10000
	pagesTestersFetch = 100
	pagesTesterFetch  = 1000
	pagesWarmup       = 20
)

// BenchmarkPages seeds 10,000 testers directly through the store and
// measures the response time of the testers page and of one tester's page,
// as a logged-in admin's browser fetches them on loopback, one at a time.
// The time runs from sending the request to reading the whole body, so it
// bounds the server's time from above.
func BenchmarkPages(b *testing.B) {
	s := testkit.StartServer(b, testkit.Options{Heartbeat: 15 * time.Second})
	seedTesters(b, s, pagesTesters)
	browser := s.Login(b)

	stop := startCPUProfile(b)
	list, size := fetchTimes(b, browser, "/", pagesTestersFetch)
	detail, _ := fetchTimes(b, browser, fmt.Sprintf("/testers/tester-%05d", pagesTesters/2), pagesTesterFetch)
	stop()
	writeProfile(b, "heap")

	reportLatency(b, "testers", list)
	reportLatency(b, "tester", detail)
	b.ReportMetric(float64(size)/1024, "testers-page-KiB")
}

// seedTesters stores n testers with active deployments and installed
// stacks, as a node full of onboarded testers would have.
func seedTesters(b *testing.B, s *testkit.Server, n int) {
	ctx := context.Background()
	now := time.Now()
	for i := range n {
		name := fmt.Sprintf("tester-%05d", i)
		t := &onboard.Tester{
			Username: name, FullName: fmt.Sprintf("Tester %05d", i), Email: name + "@example.org",
			Account: onboard.AccountExisting, InstallState: onboard.InstallInstalled,
			CockpitURL: "https://" + name + ".gw.sim.test/", CreatedAt: now, UpdatedAt: now,
			Deployment: onboard.Deployment{
				State: onboard.DeploymentActive, NodeID: "1", Project: onboard.ProjectName(name),
				Gateway: name + ".gw.sim.test", VMAddress: "10.20.0.2",
			},
		}
		if _, err := s.DB.CreateTester(ctx, t); err != nil {
			b.Fatalf("seed tester %s: %v", name, err)
		}
	}
}

// fetchTimes fetches the page count times and returns the time of each
// fetch after the warm-up, and the size of the last body.
func fetchTimes(b *testing.B, browser *testkit.Browser, path string, count int) ([]time.Duration, int) {
	var samples []time.Duration
	size := 0
	for i := range pagesWarmup + count {
		start := time.Now()
		resp, err := browser.Client.Get(browser.Base + path)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		size = len(body)
		if i >= pagesWarmup {
			samples = append(samples, took)
		}
	}
	return samples, size
}

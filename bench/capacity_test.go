package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"deployer/grid"
	"deployer/internal/testkit"
)

// Capacity settings: the open forms, the interval at which each refreshes
// its readout (the template's hx-trigger "every 5s"), and how many
// intervals are measured after a first one that fills the cache.
const (
	capacityForms     = 500
	capacityRefresh   = 5 * time.Second
	capacityIntervals = 3
)

// capacityNodes are the nodes whose readouts the forms show, half each.
var capacityNodes = []string{"4242", "4243"}

// countingProxy is a Grid Proxy on loopback that serves GET /nodes/{id} and
// counts the requests per node.
type countingProxy struct {
	mu    sync.Mutex
	reads map[string]int
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/nodes/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	p.mu.Lock()
	p.reads[id]++
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"nodeId":%s,"farmId":77,"twinId":9100,"status":"up","healthy":true,"rented":true,`+
		`"rentedByTwinId":1234,"dedicated":true,"capacity":{"total_resources":{"cru":16,"mru":68719476736,`+
		`"sru":1000204886016,"hru":0},"used_resources":{"cru":4,"mru":24051816857,"sru":128849018880,"hru":0}},`+
		`"publicConfig":{"domain":""}}`, id)
}

// snapshot returns the reads per node so far.
func (p *countingProxy) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.reads {
		out[k] = v
	}
	return out
}

// BenchmarkCapacity runs the deployer with the ThreeFold Grid backend over a
// Grid Proxy on loopback that counts requests, and 500 open forms that each
// fetch the capacity readout every 5 s, at random phases. It reports the
// upstream reads per node per refresh interval, and the readout's response
// time.
func BenchmarkCapacity(b *testing.B) {
	proxy := &countingProxy{reads: map[string]int{}}
	upstream := httptest.NewServer(proxy)
	defer upstream.Close()
	tf := grid.NewThreeFold(grid.ThreeFoldConfig{ProxyURL: upstream.URL, TwinID: 1234, TFCmd: "tfcmd"})
	s := testkit.StartServer(b, testkit.Options{Heartbeat: 15 * time.Second, Grid: tf})
	browser := s.Login(b)
	client := &http.Client{Jar: browser.Jar, Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: capacityForms, MaxIdleConnsPerHost: capacityForms,
	}}
	b.Cleanup(client.CloseIdleConnections)

	// The first interval fills the cache and opens the connections.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var latencies []time.Duration
	var failures atomic.Int64
	measuring := atomic.Bool{}
	var wg sync.WaitGroup
	for i := range capacityForms {
		node := capacityNodes[i%len(capacityNodes)]
		wg.Go(func() {
			refreshForm(ctx, client, s.URL+"/capacity?node_id="+node, func(took time.Duration, err error) {
				if err != nil {
					failures.Add(1)
					return
				}
				if measuring.Load() {
					mu.Lock()
					latencies = append(latencies, took)
					mu.Unlock()
				}
			})
		})
	}
	time.Sleep(capacityRefresh)
	before := proxy.snapshot()
	measuring.Store(true)
	stop := startCPUProfile(b)
	time.Sleep(capacityIntervals * capacityRefresh)
	stop()
	measuring.Store(false)
	after := proxy.snapshot()
	cancel()
	wg.Wait()

	reads := 0
	for _, node := range capacityNodes {
		reads = max(reads, after[node]-before[node])
	}
	b.ReportMetric(float64(reads)/capacityIntervals, "reads/node/interval")
	b.ReportMetric(float64(len(latencies))/capacityIntervals, "readouts/interval")
	b.ReportMetric(float64(failures.Load()), "failed-readouts")
	mu.Lock()
	reportLatency(b, "readout", latencies)
	mu.Unlock()
}

// refreshForm fetches the readout as an open form does: at a random phase,
// then every capacityRefresh until ctx ends. It reports each fetch's time.
func refreshForm(ctx context.Context, client *http.Client, url string, report func(time.Duration, error)) {
	timer := time.NewTimer(rand.N(capacityRefresh))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(capacityRefresh)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("HX-Request", "true")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				report(0, err)
			}
			continue
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		report(time.Since(start), err)
	}
}

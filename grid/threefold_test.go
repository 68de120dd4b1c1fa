package grid_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/grid"
	"deployer/internal/gridtest"
	"deployer/onboard"
	"deployer/stack"
	"deployer/storage"

	"golang.org/x/crypto/bcrypt"
)

const (
	twin      = 1234
	publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx3b0Ie7Xn2mY2bYkH2bqkCqB1n2m3L0tM8w0bE9q2Z deployer"
)

// fixture is the ThreeFold backend over a stand-in proxy and tfcmd.
type fixture struct {
	proxy *gridtest.Proxy
	tool  *gridtest.Tool
	grid  *grid.ThreeFold
}

func newFixture(tb testing.TB, cfg grid.ThreeFoldConfig) *fixture {
	tb.Helper()
	tool := gridtest.WriteTool(tb)
	proxy := gridtest.StartProxy(tb, tool.Dir, twin)
	proxy.SetNode("1", gridtest.UpNode(twin, 24))
	cfg.ProxyURL, cfg.TwinID, cfg.TFCmd, cfg.SSHPublicKey = proxy.URL, twin, tool.Path, publicKey
	if cfg.ListPoll == 0 {
		cfg.ListPoll = 20 * time.Millisecond
	}
	if cfg.ListWait == 0 {
		cfg.ListWait = 2 * time.Second
	}
	if cfg.ToolTimeout == 0 {
		cfg.ToolTimeout = 10 * time.Second
	}
	return &fixture{proxy: proxy, tool: tool, grid: grid.NewThreeFold(cfg)}
}

func TestThreeFoldNodeStates(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{})
	up := gridtest.UpNode(twin, 24)
	down, standby, unhealthy, rentedByOther, full, notRented := up, up, up, up, up, up
	down.Status = "down"
	standby.Status = "standby"
	unhealthy.Healthy = false
	rentedByOther.RentedByTwinID = 999
	full.UsedGiB = 61
	notRented.Rented, notRented.RentedByTwinID = false, 0
	cases := []struct {
		id, reason string
		node       gridtest.Node
		online     bool
		total      int
		free       int
	}{
		{"10", "", up, true, 14, 10},
		{"11", grid.ReasonDown, down, false, 14, 10},
		{"12", grid.ReasonStandby, standby, false, 14, 10},
		{"13", grid.ReasonUnhealthy, unhealthy, false, 14, 10},
		{"14", grid.ReasonRentedByTwin, rentedByOther, false, 14, 10},
		{"15", "", full, true, 14, 0},
		{"16", grid.ReasonNotRented, notRented, false, 14, 10},
	}
	for _, c := range cases {
		t.Run("node "+c.id, func(t *testing.T) {
			f.proxy.SetNode(c.id, c.node)
			st, err := f.grid.Node(context.Background(), c.id, true)
			if err != nil {
				t.Fatal(err)
			}
			if st.Online != c.online {
				t.Errorf("online = %v, want %v", st.Online, c.online)
			}
			if st.Reason != c.reason {
				t.Errorf("reason = %q, want %q", st.Reason, c.reason)
			}
			if st.TotalSlots != c.total {
				t.Errorf("total slots = %d, want %d", st.TotalSlots, c.total)
			}
			if st.FreeSlots != c.free {
				t.Errorf("free slots = %d, want %d", st.FreeSlots, c.free)
			}
		})
	}
}

func TestThreeFoldUnknownNode(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{})
	_, err := f.grid.Node(context.Background(), "404", false)
	if code := onboard.ErrorCode(err); code != onboard.ENotFound {
		t.Fatalf("code = %q, want %q (error %v)", code, onboard.ENotFound, err)
	}
	msg := onboard.ErrorMessage(err)
	if !strings.Contains(msg, "Node 404") {
		t.Errorf("message %q does not name the node", msg)
	}
	if !strings.Contains(msg, "node not found") {
		t.Errorf("message %q does not carry the proxy's error", msg)
	}
}

func TestThreeFoldProxyErrorBody(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{})
	f.proxy.FailWith(http.StatusInternalServerError)
	_, err := f.grid.Node(context.Background(), "1", true)
	if code := onboard.ErrorCode(err); code != onboard.EGridFailed {
		t.Fatalf("code = %q, want %q (error %v)", code, onboard.EGridFailed, err)
	}
	msg := onboard.ErrorMessage(err)
	for _, want := range []string{"node 1", "internal server error", "500"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// service returns a service over a real SQLite file and the backend, with
// the simulated installer.
func service(tb testing.TB, g onboard.Grid) (*onboard.Service, *onboard.Runner, *storage.DB) {
	tb.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(tb.TempDir(), "deployer.db"))
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	svc := onboard.NewService(db, g, stack.NewSim(noFaults{}, 0), onboard.NewHub(), log,
		onboard.Options{BcryptCost: bcrypt.MinCost})
	runner := onboard.NewRunner(svc)
	if err := runner.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		runner.Shutdown(ctx)
		svc.Shutdown(ctx)
		db.Close()
	})
	return svc, runner, db
}

type noFaults struct{}

func (noFaults) DrawFault(context.Context, string, string) (string, bool, error) {
	return "", false, nil
}

func TestCapacityReadsShareOneRequest(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{NodeTTL: time.Minute})
	svc, _, _ := service(t, f.grid)
	// A slow response keeps the first read in flight while the others arrive.
	f.proxy.SetDelay(500 * time.Millisecond)

	const readers = 500
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	start := make(chan struct{})
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := svc.Capacity(context.Background(), "1")
			if err == nil && c.RoomForTesters != 5 {
				err = errors.New("wrong room: " + c.Reason)
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.proxy.NodeReads.Load(); n != 1 {
		t.Errorf("%d concurrent capacity reads sent %d requests upstream, want 1", readers, n)
	}
}

func TestNodeCacheFreshAndInvalidation(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{NodeTTL: time.Minute})
	ctx := context.Background()
	for range 3 {
		if _, err := f.grid.Node(ctx, "1", false); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.proxy.NodeReads.Load(); n != 1 {
		t.Fatalf("cached reads sent %d requests, want 1", n)
	}
	if _, err := f.grid.Node(ctx, "1", true); err != nil {
		t.Fatal(err)
	}
	if n := f.proxy.NodeReads.Load(); n != 2 {
		t.Fatalf("a fresh read sent %d requests in all, want 2", n)
	}

	// The deployer's own cancel shows at once.
	f.proxy.SetNode("1", gridtest.UpNode(twin, 40))
	if err := f.grid.Cancel(ctx, "1", onboard.ProjectName("nobody"), "run"); err != nil {
		t.Fatal(err)
	}
	st, err := f.grid.Node(ctx, "1", false)
	if err != nil {
		t.Fatal(err)
	}
	if st.FreeSlots != 6 {
		t.Errorf("free slots after cancel = %d, want 6 from a new read", st.FreeSlots)
	}
}

func TestRefusedProvisionCallsNoTool(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{})
	svc, _, _ := service(t, f.grid)
	ctx := context.Background()
	if _, err := svc.CreateOrRegister(ctx, onboard.TesterInput{Username: "alice", FullName: "Alice A",
		Email: "alice@example.org"}); err != nil {
		t.Fatal(err)
	}

	down := gridtest.UpNode(twin, 24)
	down.Status = "down"
	f.proxy.SetNode("1", down)
	_, err := svc.Provision(ctx, "alice", "1")
	if code := onboard.ErrorCode(err); code != onboard.ENodeOffline {
		t.Errorf("offline node: code = %q, want %q (error %v)", code, onboard.ENodeOffline, err)
	}

	f.proxy.SetNode("1", gridtest.UpNode(twin, 61))
	_, err = svc.Provision(ctx, "alice", "1")
	if code := onboard.ErrorCode(err); code != onboard.ENodeFull {
		t.Errorf("full node: code = %q, want %q (error %v)", code, onboard.ENodeFull, err)
	}
	if calls := f.tool.Calls(t); len(calls) != 0 {
		t.Errorf("refused provisions ran tfcmd: %q", calls)
	}
}

func TestOnboardingOnThreeFold(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{VMCPU: 4, VMDiskGB: 30, VMPort: 8080})
	svc, runner, _ := service(t, f.grid)
	ctx := context.Background()

	res, err := runner.StartOnboarding(ctx, onboard.StartInput{NodeID: "1", TesterInput: onboard.TesterInput{
		Username: "alice", FullName: "Alice Example", Email: "alice@example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	o := waitFinished(t, runner, res.Onboarding.ID)
	if o.Status != onboard.StatusSucceeded {
		t.Fatalf("onboarding %s, want succeeded: %s %s", o.Status, o.ErrorCode, o.ErrorMessage)
	}

	tester, err := svc.Tester(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	d := tester.Deployment
	if d.Gateway != "deployeralice.gent01.grid.test" {
		t.Errorf("gateway = %q", d.Gateway)
	}
	if !strings.HasPrefix(d.VMAddress, "5a1:") {
		t.Errorf("VM address = %q, want the Mycelium address tfcmd printed", d.VMAddress)
	}
	if len(d.Contracts) != 4 {
		t.Errorf("recorded %d contracts, want network, VM, name and gateway: %+v", len(d.Contracts), d.Contracts)
	}
	if tester.CockpitURL != "https://deployeralice.gent01.grid.test/" {
		t.Errorf("cockpit URL = %q", tester.CockpitURL)
	}

	calls := f.tool.Calls(t)
	if len(calls) != 2 {
		t.Fatalf("tfcmd runs = %q, want deploy vm and deploy gateway name", calls)
	}
	for _, want := range []string{"deploy vm --name deployeralice", "--node 1", "--cpu 4", "--memory 8",
		"--rootfs 30", "--flist " + grid.DefaultVMImage, "--entrypoint /sbin/zinit init"} {
		if !strings.Contains(calls[0], want) {
			t.Errorf("deploy vm call %q lacks %q", calls[0], want)
		}
	}
	if !strings.HasPrefix(calls[1], "deploy gateway name --name deployeralice --node 1 --backends http://[5a1:") {
		t.Errorf("gateway call = %q", calls[1])
	}
	if got := f.tool.File("backends"); !strings.HasSuffix(got, "]:8080") {
		t.Errorf("gateway backend = %q, want the VM port 8080", got)
	}
	if got := f.tool.File("ssh.pub"); got != publicKey {
		t.Errorf("tfcmd got SSH key %q, want the deployer's public key", got)
	}

	// Teardown cancels by project name and waits for the proxy.
	if _, err := svc.Teardown(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if left := f.proxy.Contracts(); len(left) != 0 {
		t.Errorf("contracts left after teardown: %+v", left)
	}
	if last := f.tool.Calls(t); last[len(last)-1] != "cancel deployeralice" {
		t.Errorf("last tfcmd run = %q, want cancel deployeralice", last[len(last)-1])
	}
}

func waitFinished(tb testing.TB, r *onboard.Runner, id string) *onboard.Onboarding {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, err := r.Onboarding(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if o.Finished() {
			return o
		}
		if time.Now().After(deadline) {
			tb.Fatalf("onboarding %s still running", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder collects the contracts that Deploy records.
type recorder struct{ got []onboard.Contract }

func (r *recorder) record(c onboard.Contract) error {
	r.got = append(r.got, c)
	return nil
}

func TestDeployAdoptsExistingObjects(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{})
	ctx := context.Background()
	req := onboard.DeployRequest{NodeID: "1", Project: onboard.ProjectName("bob"), Username: "bob", RunID: "r1"}
	first, err := f.grid.Deploy(ctx, req, (&recorder{}).record)
	if err != nil {
		t.Fatal(err)
	}

	var rec recorder
	second, err := f.grid.Deploy(ctx, req, rec.record)
	if err != nil {
		t.Fatal(err)
	}
	calls := f.tool.Calls(t)
	if len(calls) != 3 || calls[2] != "get vm deployerbob" {
		t.Errorf("tfcmd runs = %q, want the second deploy to only read the VM", calls)
	}
	if len(rec.got) != 4 {
		t.Errorf("the second deploy recorded %d contracts, want the 4 it adopted", len(rec.got))
	}
	if second.Gateway != first.Gateway || second.VMAddress != first.VMAddress {
		t.Errorf("adopted %+v, want the same gateway and address as %+v", second, first)
	}
	if n := len(f.proxy.Contracts()); n != 4 {
		t.Errorf("the grid holds %d contracts, want 4 and no duplicates", n)
	}

	found, err := f.grid.Lookup(ctx, "1", req.Project)
	if err != nil {
		t.Fatal(err)
	}
	if !found.Complete() {
		t.Errorf("Lookup = %+v, want a complete project", found)
	}
	if found.Gateway != first.Gateway {
		t.Errorf("Lookup gateway = %q, want %q", found.Gateway, first.Gateway)
	}
}

func TestDeployFailureRecordsWhatExists(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{})
	ctx := context.Background()
	f.tool.Fail(t, "after-network")
	var rec recorder
	req := onboard.DeployRequest{NodeID: "1", Project: onboard.ProjectName("carol"), Username: "carol"}
	_, err := f.grid.Deploy(ctx, req, rec.record)
	if err == nil {
		t.Fatal("Deploy succeeded, want the tool's failure")
	}
	if !strings.Contains(err.Error(), "not enough capacity") {
		t.Errorf("error %q does not carry tfcmd's message", err)
	}
	if len(rec.got) != 1 || rec.got[0].Kind != onboard.ContractNetwork {
		t.Errorf("recorded %+v, want the network the failed run left", rec.got)
	}
	if err := f.grid.Cancel(ctx, "1", req.Project, "undo"); err != nil {
		t.Fatal(err)
	}
	if left := f.proxy.Contracts(); len(left) != 0 {
		t.Errorf("contracts left after cancel: %+v", left)
	}
}

func TestDeployToolTimeout(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{ToolTimeout: 300 * time.Millisecond})
	f.tool.Hang(t, "deploy-vm")
	start := time.Now()
	req := onboard.DeployRequest{NodeID: "1", Project: onboard.ProjectName("dave"), Username: "dave"}
	_, err := f.grid.Deploy(context.Background(), req, (&recorder{}).record)
	if !errors.Is(err, onboard.ErrGridTimeout) {
		t.Fatalf("error = %v, want one wrapping ErrGridTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Deploy returned after %s, want soon after the 300ms timeout", d)
	}
}

func TestDeployNeedsGatewayDomain(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{})
	n := gridtest.UpNode(twin, 24)
	n.Domain = ""
	f.proxy.SetNode("1", n)
	req := onboard.DeployRequest{NodeID: "1", Project: onboard.ProjectName("erin"), Username: "erin"}
	_, err := f.grid.Deploy(context.Background(), req, (&recorder{}).record)
	if err == nil || !strings.Contains(onboard.ErrorMessage(err), "DEPLOYER_GATEWAY_NODE") {
		t.Errorf("error = %v, want one that points at DEPLOYER_GATEWAY_NODE", err)
	}
	if calls := f.tool.Calls(t); len(calls) != 0 {
		t.Errorf("tfcmd ran without a gateway domain: %q", calls)
	}
}

func TestContractsListsOnlyDeployerNaming(t *testing.T) {
	f := newFixture(t, grid.ThreeFoldConfig{GatewayNode: "2"})
	f.proxy.SetNode("2", gridtest.UpNode(twin, 0))
	ctx := context.Background()
	req := onboard.DeployRequest{NodeID: "1", Project: onboard.ProjectName("mary-ann"), Username: "mary-ann"}
	if _, err := f.grid.Deploy(ctx, req, (&recorder{}).record); err != nil {
		t.Fatal(err)
	}
	// A VM of the same twin made outside the deployer stays out of the list.
	if out, err := runTool(f.tool, "deploy", "vm", "--name", "myvm", "--ssh", f.tool.Dir+"/ssh.pub", "--node", "1"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	list, err := f.grid.Contracts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 {
		t.Fatalf("Contracts = %+v, want the deployer's 4", list)
	}
	for _, c := range list {
		if c.Project != req.Project {
			t.Errorf("contract %d has project %q, want %q", c.ID, c.Project, req.Project)
		}
		if c.Kind == onboard.ContractName && c.NodeID != "2" {
			t.Errorf("gateway contract %d is on node %q, want the gateway node 2", c.ID, c.NodeID)
		}
	}
}

func runTool(tool *gridtest.Tool, args ...string) ([]byte, error) {
	return exec.Command(tool.Path, args...).CombinedOutput()
}

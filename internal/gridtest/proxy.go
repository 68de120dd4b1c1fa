// Package gridtest provides stand-ins for the ThreeFold Grid in tests. The
// Grid Proxy runs on 127.0.0.1 and serves the real JSON shapes. The tfcmd
// script records its arguments, keeps contracts in a file that the proxy
// serves, prints output in tfcmd's shape and fails on request.
package gridtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// GiB is a gibibyte in bytes.
const GiB = 1 << 30

// Node is a node the stand-in proxy serves.
type Node struct {
	Status         string // up, down or standby
	Healthy        bool
	Rented         bool
	RentedByTwinID uint64
	Dedicated      bool
	TotalGiB       uint64
	UsedGiB        uint64
	Domain         string
}

// UpNode returns a healthy node that is up, rented by twin, with 64 GiB of
// memory of which used GiB are taken, and a public domain.
func UpNode(twin, used uint64) Node {
	return Node{Status: "up", Healthy: true, Rented: true, RentedByTwinID: twin, Dedicated: true,
		TotalGiB: 64, UsedGiB: used, Domain: "gent01.grid.test"}
}

// Proxy is a stand-in Grid Proxy. It is safe for concurrent use.
type Proxy struct {
	URL    string
	Twin   uint64
	server *httptest.Server
	state  string

	mu       sync.Mutex
	nodes    map[string]Node
	failWith int // status of every response when not zero
	delay    time.Duration

	// NodeReads counts GET /nodes/{id} requests; ContractReads counts
	// GET /contracts requests.
	NodeReads     atomic.Int64
	ContractReads atomic.Int64
}

// StartProxy starts a proxy on 127.0.0.1 that serves the contracts kept in
// state, the folder of a Tool, for the twin. It stops when the test ends.
func StartProxy(tb testing.TB, state string, twin uint64) *Proxy {
	tb.Helper()
	p := &Proxy{Twin: twin, state: state, nodes: map[string]Node{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: p}}
	p.server.Start()
	p.URL = p.server.URL
	tb.Cleanup(p.server.Close)
	return p
}

// SetNode adds or changes a node.
func (p *Proxy) SetNode(id string, n Node) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nodes[id] = n
}

// FailWith makes every response an error with the status and a JSON error
// body. Status 0 restores normal responses.
func (p *Proxy) FailWith(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failWith = status
}

// SetDelay delays every node response by d.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// ServeHTTP serves GET /nodes/{id} and GET /contracts.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	p.mu.Lock()
	fail, delay := p.failWith, p.delay
	p.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/nodes/"):
		p.NodeReads.Add(1)
		time.Sleep(delay)
	case r.URL.Path == "/contracts":
		p.ContractReads.Add(1)
	}
	if fail != 0 {
		writeJSON(w, fail, map[string]string{"error": "internal server error"})
		return
	}

	switch {
	case strings.HasPrefix(r.URL.Path, "/nodes/"):
		p.serveNode(w, strings.TrimPrefix(r.URL.Path, "/nodes/"))
	case r.URL.Path == "/contracts":
		p.serveContracts(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	}
}

func (p *Proxy) serveNode(w http.ResponseWriter, id string) {
	p.mu.Lock()
	n, ok := p.nodes[id]
	p.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "node not found"})
		return
	}
	nodeID, _ := strconv.Atoi(id)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "node-" + id, "nodeId": nodeID, "farmId": 77, "twinId": 9100 + nodeID,
		"status": n.Status, "healthy": n.Healthy, "rented": n.Rented, "rentedByTwinId": n.RentedByTwinID,
		"rentable": !n.Rented, "dedicated": n.Dedicated,
		"capacity": map[string]any{
			"total_resources": map[string]uint64{"cru": 16, "mru": n.TotalGiB * GiB, "sru": 1000204886016, "hru": 0},
			"used_resources":  map[string]uint64{"cru": 4, "mru": n.UsedGiB * GiB, "sru": 128849018880, "hru": 0},
		},
		"publicConfig": map[string]string{"domain": n.Domain, "gw4": "", "gw6": "", "ipv4": "", "ipv6": ""},
	})
}

// serveContracts lists the contracts file as the proxy does: node contracts
// with tfcmd's deployment data, name contracts with their name.
func (p *Proxy) serveContracts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("twin_id") != strconv.FormatUint(p.Twin, 10) || q.Get("state") != "Created" {
		writeJSON(w, http.StatusOK, []any{})
		return
	}
	size, _ := strconv.Atoi(q.Get("size"))
	page, _ := strconv.Atoi(q.Get("page"))
	if size <= 0 {
		size = 50
	}
	page = max(page, 1)

	all := p.Contracts()
	var out []any
	for i, c := range all {
		if i < (page-1)*size || i >= page*size {
			continue
		}
		out = append(out, c.proxyJSON(p.Twin))
	}
	if out == nil {
		out = []any{}
	}
	writeJSON(w, http.StatusOK, out)
}

// Contract is one line of the stand-in's contracts file.
type Contract struct {
	ID      uint64
	Kind    string // node or name
	NodeID  uint64
	Type    string // vm, network or gateway for node contracts
	Name    string
	Project string
}

func (c Contract) proxyJSON(twin uint64) map[string]any {
	if c.Kind == "name" {
		return map[string]any{"contract_id": c.ID, "twin_id": twin, "state": "Created", "created_at": 1700000000,
			"type": "name", "details": map[string]string{"name": c.Name}}
	}
	typ := c.Type
	if typ == "gateway" {
		typ = "Gateway Name"
	}
	data, _ := json.Marshal(map[string]any{"version": 3, "type": typ, "name": c.Name, "projectName": c.Project})
	return map[string]any{"contract_id": c.ID, "twin_id": twin, "state": "Created", "created_at": 1700000000,
		"type": "node", "details": map[string]any{"nodeId": c.NodeID, "deployment_data": string(data),
			"deployment_hash": "00", "number_of_public_ips": 0, "farm_name": "farm", "farm_id": 77}}
}

// Contracts returns the live contracts of the stand-in grid.
func (p *Proxy) Contracts() []Contract {
	f, err := os.Open(filepath.Join(p.state, "contracts"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var list []Contract
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c Contract
		if _, err := fmt.Sscan(sc.Text(), &c.ID, &c.Kind, &c.NodeID, &c.Type, &c.Name, &c.Project); err == nil {
			list = append(list, c)
		}
	}
	return list
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

package grid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"deployer/onboard"
)

// proxyTimeout bounds one Grid Proxy request.
const proxyTimeout = 15 * time.Second

// maxProxyBody bounds the size of a Grid Proxy response that is read.
const maxProxyBody = 8 << 20

// ProxyNode is the part of the Grid Proxy's node record that the deployer
// reads from GET /nodes/{id}. Memory figures are in bytes.
type ProxyNode struct {
	NodeID         int    `json:"nodeId"`
	FarmID         int    `json:"farmId"`
	TwinID         int    `json:"twinId"`
	Status         string `json:"status"` // up, down or standby
	Healthy        bool   `json:"healthy"`
	Rented         bool   `json:"rented"`
	RentedByTwinID uint64 `json:"rentedByTwinId"`
	Dedicated      bool   `json:"dedicated"`
	Capacity       struct {
		Total ProxyResources `json:"total_resources"`
		Used  ProxyResources `json:"used_resources"`
	} `json:"capacity"`
	PublicConfig struct {
		Domain string `json:"domain"`
	} `json:"publicConfig"`
}

// ProxyResources is a node's capacity: CPU cores, and memory, SSD and HDD in
// bytes.
type ProxyResources struct {
	CRU uint64 `json:"cru"`
	MRU uint64 `json:"mru"`
	SRU uint64 `json:"sru"`
	HRU uint64 `json:"hru"`
}

// ProxyContract is one contract from GET /contracts. Type is node, name or
// rent; node contracts carry the deployment data that tfcmd writes, and name
// contracts carry the gateway name.
type ProxyContract struct {
	ContractID uint64 `json:"contract_id"`
	TwinID     uint64 `json:"twin_id"`
	State      string `json:"state"`
	Type       string `json:"type"`
	Details    struct {
		NodeID         uint64 `json:"nodeId"`
		DeploymentData string `json:"deployment_data"`
		Name           string `json:"name"`
	} `json:"details"`
}

// deploymentData is the JSON that tfcmd stores with each node contract.
type deploymentData struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	ProjectName string `json:"projectName"`
}

// Proxy reads nodes and contracts from a Grid Proxy. It is safe for
// concurrent use.
type Proxy struct {
	base   string
	client *http.Client
}

// NewProxy returns a client of the Grid Proxy at base, such as
// https://gridproxy.grid.tf. A nil client uses one with a 15 s timeout.
func NewProxy(base string, client *http.Client) *Proxy {
	if client == nil {
		client = &http.Client{Timeout: proxyTimeout}
	}
	return &Proxy{base: strings.TrimSuffix(base, "/"), client: client}
}

// URL returns the proxy's base URL.
func (p *Proxy) URL() string { return p.base }

// Node reads one node. It returns onboard.ENotFound for a node the proxy does
// not know, and onboard.EGridFailed, naming the node, for any other failure.
func (p *Proxy) Node(ctx context.Context, nodeID string) (ProxyNode, error) {
	var n ProxyNode
	err := p.get(ctx, "/nodes/"+url.PathEscape(nodeID), &n)
	var status statusError
	switch {
	case errors.As(err, &status) && status.code == http.StatusNotFound:
		return n, &onboard.Error{Code: onboard.ENotFound, Err: err,
			Message: fmt.Sprintf("Node %s is not on the grid that %s serves (%s). Check the node id.",
				nodeID, p.base, status.message)}
	case err != nil:
		return n, &onboard.Error{Code: onboard.EGridFailed, Err: err,
			Message: fmt.Sprintf("The Grid Proxy at %s did not return node %s: %s", p.base, nodeID, describe(err))}
	}
	return n, nil
}

// maxContractPages bounds how many pages of contracts one listing reads.
const maxContractPages = 50

// Contracts returns the twin's contracts in the Created state, reading every
// page. It returns onboard.EGridFailed when the proxy fails.
func (p *Proxy) Contracts(ctx context.Context, twinID uint64) ([]ProxyContract, error) {
	const size = 100
	var all []ProxyContract
	for page := 1; page <= maxContractPages; page++ {
		q := url.Values{
			"twin_id": {strconv.FormatUint(twinID, 10)}, "state": {"Created"},
			"size": {strconv.Itoa(size)}, "page": {strconv.Itoa(page)},
		}
		var batch []ProxyContract
		if err := p.get(ctx, "/contracts?"+q.Encode(), &batch); err != nil {
			return nil, &onboard.Error{Code: onboard.EGridFailed, Err: err,
				Message: fmt.Sprintf("The Grid Proxy at %s did not list the contracts of twin %d: %s",
					p.base, twinID, describe(err))}
		}
		all = append(all, batch...)
		if len(batch) < size {
			return all, nil
		}
	}
	return all, nil
}

// statusError is a Grid Proxy response with a status other than 200, and
// the text of its {"error":"…"} body when it has one.
type statusError struct {
	code    int
	message string
}

func (e statusError) Error() string {
	return fmt.Sprintf("status %d: %s", e.code, e.message)
}

// get fetches path and decodes the JSON response into out.
func (p *Proxy) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProxyBody))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}

	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return statusError{code: resp.StatusCode, message: msg}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// describe turns a request error into words for an admin: the proxy's own
// message, or what went wrong with the connection.
func describe(err error) string {
	var status statusError
	var urlErr *url.Error
	switch {
	case errors.As(err, &status):
		return fmt.Sprintf("%s (status %d)", status.message, status.code)
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	case errors.As(err, &urlErr):
		return urlErr.Err.Error()
	default:
		return err.Error()
	}
}

// Reasons a ThreeFold node is not usable by the deployer.
const (
	ReasonDown         = "down"
	ReasonStandby      = "standby"
	ReasonUnhealthy    = "unhealthy"
	ReasonRentedByTwin = "rented by another twin"
	ReasonNotRented    = "dedicated node not rented by the deployer's twin"
)

// MinSystemReserve is the least memory that ZOS keeps for itself on a node.
//
// ZOS reserves 10% of a node's memory for its own services, and at least
// 2 GiB (threefoldtech/zos, docs/internals/capacity.md, "Reserved Memory").
// That document's formula writes min(), but its prose, "with a MIN reserved
// memory of 2GB", describes a floor, which is what max() gives. The floor is
// the safer reading, because it can only lower the total slots shown.
const MinSystemReserve = 2 << 30

// SystemReserve returns the memory ZOS reserves on a node with total bytes
// of memory: 10%, and at least MinSystemReserve.
func SystemReserve(total uint64) uint64 {
	return max(total/10, MinSystemReserve)
}

// NodeStatus turns a proxy node into the deployer's view of it. twinID is
// the deployer's own twin, 0 when unset.
//
// Free slots are the free memory, total less used, in whole slots; used
// memory already includes the system reserve. Total slots are the total
// memory less SystemReserve, in whole slots.
func NodeStatus(n ProxyNode, nodeID string, twinID uint64, now time.Time) onboard.NodeStatus {
	total, used := n.Capacity.Total.MRU, n.Capacity.Used.MRU
	st := onboard.NodeStatus{NodeID: nodeID, CheckedAt: now}
	if reserve := SystemReserve(total); total > reserve {
		st.TotalSlots = int((total - reserve) / onboard.SlotBytes)
	}
	if total > used {
		st.FreeSlots = int((total - used) / onboard.SlotBytes)
	}
	st.UsedSlots = max(st.TotalSlots-st.FreeSlots, 0)

	switch {
	case n.Status == "down":
		st.Reason = ReasonDown
	case n.Status == "standby":
		st.Reason = ReasonStandby
	case n.Status != "up":
		st.Reason = fmt.Sprintf("status %q", n.Status)
	case !n.Healthy:
		st.Reason = ReasonUnhealthy
	case n.Rented && (twinID == 0 || n.RentedByTwinID != twinID):
		st.Reason = ReasonRentedByTwin
	case n.Dedicated && !n.Rented:
		st.Reason = ReasonNotRented
	default:
		st.Online = true
	}
	return st
}

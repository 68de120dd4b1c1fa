package grid

import (
	"context"
	"sync"
	"time"
)

// nodeCache keeps node reads for a short time and shares them: while one
// read of a node is in flight, every other caller for that node waits for
// its result instead of sending its own request. It is safe for concurrent
// use.
type nodeCache struct {
	ttl   time.Duration
	fetch func(ctx context.Context, nodeID string) (ProxyNode, error)
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]nodeEntry
	calls   map[string]*nodeCall
	// epochs rise on every invalidation of a node, so that a read that
	// started before it does not fill the cache with figures from before.
	epochs map[string]uint64
}

type nodeEntry struct {
	node ProxyNode
	at   time.Time
}

// nodeCall is one upstream read in flight; done closes when node and err
// are set.
type nodeCall struct {
	done chan struct{}
	node ProxyNode
	err  error
}

// nodeFetchTimeout bounds a shared upstream read, which runs on a context of
// its own so that one caller giving up does not fail the others.
const nodeFetchTimeout = 20 * time.Second

func newNodeCache(ttl time.Duration, fetch func(ctx context.Context, nodeID string) (ProxyNode, error)) *nodeCache {
	return &nodeCache{
		ttl: ttl, fetch: fetch, now: time.Now,
		entries: map[string]nodeEntry{}, calls: map[string]*nodeCall{}, epochs: map[string]uint64{},
	}
}

// get returns the node from the cache unless fresh is set or the entry is
// older than the TTL; otherwise it joins the read in flight or starts one.
// It returns ctx's error when ctx ends first; the read goes on for the
// other callers. Errors are not cached.
func (c *nodeCache) get(ctx context.Context, nodeID string, fresh bool) (ProxyNode, error) {
	c.mu.Lock()
	if e, ok := c.entries[nodeID]; ok && !fresh && c.now().Sub(e.at) < c.ttl {
		c.mu.Unlock()
		return e.node, nil
	}
	call, ok := c.calls[nodeID]
	if !ok {
		call = &nodeCall{done: make(chan struct{})}
		c.calls[nodeID] = call
		go c.run(nodeID, call, c.epochs[nodeID], context.WithoutCancel(ctx))
	}
	c.mu.Unlock()

	select {
	case <-call.done:
		return call.node, call.err
	case <-ctx.Done():
		return ProxyNode{}, ctx.Err()
	}
}

// run reads the node upstream and stores the result unless the node was
// invalidated meanwhile.
func (c *nodeCache) run(nodeID string, call *nodeCall, epoch uint64, parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, nodeFetchTimeout)
	defer cancel()
	node, err := c.fetch(ctx, nodeID)

	c.mu.Lock()
	if c.calls[nodeID] == call {
		delete(c.calls, nodeID)
	}
	if err == nil && c.epochs[nodeID] == epoch {
		c.entries[nodeID] = nodeEntry{node: node, at: c.now()}
	}
	c.mu.Unlock()
	call.node, call.err = node, err
	close(call.done)
}

// invalidate drops the node's cached figures and detaches any read in
// flight, so that the next caller reads anew. Callers already waiting on
// the detached read still get its result.
func (c *nodeCache) invalidate(nodeID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, nodeID)
	delete(c.calls, nodeID)
	c.epochs[nodeID]++
}

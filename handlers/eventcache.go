package handlers

import "sync"

// panelCacheSize bounds how many onboardings keep a rendered panel.
const panelCacheSize = 256

// panelCache keeps the newest rendered panel parts of each onboarding, so
// that the streams of an onboarding render each state once instead of once
// per stream. Every stream that has applied the same events has the same
// state, so the parts rendered for an onboarding at an event id are the
// same for all of them. It is safe for concurrent use.
type panelCache struct {
	mu      sync.Mutex
	entries map[string]*panelEntry
}

// panelEntry is one onboarding's panel at one event id; ready closes when
// data and err are set.
type panelEntry struct {
	seq   int64
	ready chan struct{}
	data  []byte
	err   error
}

func newPanelCache() *panelCache {
	return &panelCache{entries: map[string]*panelEntry{}}
}

// get returns the onboarding's panel parts at the event id seq. The first
// caller for a newer id renders them while the others for that id wait; a
// caller behind the newest id renders its own and keeps them out of the
// cache. The returned bytes must not be changed.
func (c *panelCache) get(onboardingID string, seq int64, render func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e := c.entries[onboardingID]
	switch {
	case e != nil && e.seq == seq:
		c.mu.Unlock()
		<-e.ready
		return e.data, e.err
	case e != nil && e.seq > seq:
		c.mu.Unlock()
		return render()
	}
	if e == nil && len(c.entries) >= panelCacheSize {
		// Drop any one entry: an onboarding whose streams are still open
		// renders its next state anew either way.
		for id := range c.entries {
			delete(c.entries, id)
			break
		}
	}
	e = &panelEntry{seq: seq, ready: make(chan struct{})}
	c.entries[onboardingID] = e
	c.mu.Unlock()

	e.data, e.err = render()
	close(e.ready)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[onboardingID] == e {
			delete(c.entries, onboardingID)
		}
		c.mu.Unlock()
	}
	return e.data, e.err
}

// panelParts returns the panel parts of the stream's state, which is the
// onboarding's state at the stream's last event id.
func (s *stream) panelParts() ([]byte, error) {
	return s.h.panels.get(s.id, s.last, func() ([]byte, error) { return s.h.panelParts(s.state) })
}

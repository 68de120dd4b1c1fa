package handlers

import (
	"encoding/json"
	"sync"

	"deployer/onboard"
)

// eventCacheSize bounds how many onboardings keep formatted data.
const eventCacheSize = 256

// eventCache keeps, for each onboarding, the data fields of its newest event
// as the streams send them, so that the streams of an onboarding format
// each event once instead of once per stream. Data that depends only on the
// onboarding and the event id is the same for every stream: a stored event,
// or the panel of a state that results from the same events. It is safe
// for concurrent use.
type eventCache struct {
	mu      sync.Mutex
	entries map[string]*eventEntry
}

// eventEntry is one onboarding's data at one event id; ready closes when
// fields and err are set.
type eventEntry struct {
	seq    int64
	ready  chan struct{}
	fields []byte
	err    error
}

func newEventCache() *eventCache {
	return &eventCache{entries: map[string]*eventEntry{}}
}

// get returns the onboarding's data fields at the event id seq. The first
// caller for a newer id formats them while the others for that id wait. A
// caller behind the newest id formats its own, which stay out of the cache.
// The returned bytes must not be changed.
func (c *eventCache) get(onboardingID string, seq int64, format func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e := c.entries[onboardingID]
	switch {
	case e != nil && e.seq == seq:
		c.mu.Unlock()
		<-e.ready
		return e.fields, e.err
	case e != nil && e.seq > seq:
		c.mu.Unlock()
		return format()
	}
	if e == nil && len(c.entries) >= eventCacheSize {
		// Drop any one entry: an onboarding whose streams are still open
		// formats its next event anew either way.
		for id := range c.entries {
			delete(c.entries, id)
			break
		}
	}
	e = &eventEntry{seq: seq, ready: make(chan struct{})}
	c.entries[onboardingID] = e
	c.mu.Unlock()

	e.fields, e.err = format()
	close(e.ready)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[onboardingID] == e {
			delete(c.entries, onboardingID)
		}
		c.mu.Unlock()
	}
	return e.fields, e.err
}

// panelFields returns the data fields of the panel parts of the stream's
// state, which is the onboarding's state at the stream's last event id.
func (s *stream) panelFields() ([]byte, error) {
	return s.h.panels.get(s.id, s.last, func() ([]byte, error) {
		parts, err := s.h.panelParts(s.state)
		if err != nil {
			return nil, err
		}
		return dataFields(parts), nil
	})
}

// eventFields returns the data fields of a stored event's JSON.
func (s *stream) eventFields(e onboard.Event) ([]byte, error) {
	return s.h.events.get(s.id, e.Seq, func() ([]byte, error) {
		data, err := json.Marshal(newEventJSON(e))
		if err != nil {
			return nil, err
		}
		return dataFields(data), nil
	})
}

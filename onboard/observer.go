package onboard

// EventObserver receives every event that the hub publishes, such as the
// stage changes and outcomes that metrics count. Unlike a subscriber, an
// observer never lags and never misses an event, because Publish calls it
// synchronously, under the hub's lock and in publication order.
// ObserveEvent must return quickly and must not call the hub.
type EventObserver interface {
	ObserveEvent(e Event)
}

// Observe makes o receive every event published after the call. Add
// observers before the runner starts, so that they see the events of
// onboardings that a restart resumes. Observe is safe for concurrent use.
func (h *Hub) Observe(o EventObserver) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observers = append(h.observers, o)
}

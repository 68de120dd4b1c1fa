package onboard

import (
	"sync"
	"sync/atomic"
)

// subscriptionBuffer is how many events a slow subscriber may fall behind
// before it is marked lagged. A lagged subscriber reads the rest from the
// store, where every event is kept. An onboarding publishes at most about
// six events in a row without waiting on the grid. Subscribers share one
// copy of each event, so a slot costs a stream only a pointer.
const subscriptionBuffer = 16

// AllOnboardings subscribes to the events of every onboarding.
const AllOnboardings = "*"

// Hub wakes the open event streams when an onboarding changes. Events are
// stored before they are published, so a subscriber that misses one can read
// it back. Hub is safe for concurrent use.
type Hub struct {
	mu     sync.Mutex
	topics map[string]map[*Subscription]struct{}
	count  atomic.Int64
	closed chan struct{}
	once   sync.Once
	// observers see every published event; see Observe.
	observers []EventObserver
}

// Subscription receives the events of one onboarding, or of all of them.
type Subscription struct {
	topic string
	c     chan *Event
	// lagged is set when an event was dropped because C was full.
	lagged atomic.Bool
}

// C returns the channel the subscription's events arrive on. The events are
// shared by every subscriber and must not be changed.
func (s *Subscription) C() <-chan *Event { return s.c }

// Lagged reports, and clears, whether events were dropped since the last call.
func (s *Subscription) Lagged() bool { return s.lagged.Swap(false) }

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{topics: map[string]map[*Subscription]struct{}{}, closed: make(chan struct{})}
}

// Subscribe starts delivering the onboarding's events, or every event for
// AllOnboardings. The caller must Unsubscribe.
func (h *Hub) Subscribe(onboardingID string) *Subscription {
	sub := &Subscription{topic: onboardingID, c: make(chan *Event, subscriptionBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.topics[onboardingID]
	if subs == nil {
		subs = map[*Subscription]struct{}{}
		h.topics[onboardingID] = subs
	}
	subs[sub] = struct{}{}
	h.count.Add(1)
	return sub
}

// Unsubscribe stops delivery; calling it twice is harmless.
func (h *Hub) Unsubscribe(sub *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.topics[sub.topic]
	if _, ok := subs[sub]; !ok {
		return
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(h.topics, sub.topic)
	}
	h.count.Add(-1)
}

// Publish passes e to the observers, then delivers it to the onboarding's
// subscribers and to those of all onboardings without blocking.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.observers {
		o.ObserveEvent(e)
	}
	shared := &e
	for _, topic := range [2]string{e.OnboardingID, AllOnboardings} {
		for sub := range h.topics[topic] {
			select {
			case sub.c <- shared:
			default:
				sub.lagged.Store(true)
			}
		}
	}
}

// Subscribers returns the number of open subscriptions.
func (h *Hub) Subscribers() int { return int(h.count.Load()) }

// Close tells every stream that the server is stopping.
func (h *Hub) Close() { h.once.Do(func() { close(h.closed) }) }

// Closed returns a channel that is closed when the server stops.
func (h *Hub) Closed() <-chan struct{} { return h.closed }

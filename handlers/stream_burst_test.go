package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"deployer/internal/testkit"
	"deployer/onboard"
)

// A burst larger than the hub's buffer marks the stream lagged, and the
// stream reads what it missed from the store, so the client still gets
// every event once and in order.
func TestStreamBurstArrivesWhole(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: time.Hour, Heartbeat: 15 * time.Second})
	o, status := s.Start(t, "burst")
	if status != http.StatusAccepted {
		t.Fatalf("start: status %d", status)
	}
	resp := s.Stream(t, "/api/onboardings/"+o.ID+"/events", nil)
	defer resp.Body.Close()
	r := testkit.NewSSEReader(resp.Body)
	first, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}

	// Store far more events than the hub buffers, then publish them all at
	// once, faster than the stream can write them.
	const burst = 200
	var stored []onboard.Event
	for i := range burst {
		e, err := s.DB.AppendEvent(context.Background(), onboard.Event{
			OnboardingID: o.ID, Stage: onboard.StageProvisioning, Status: onboard.StageRunning,
			Kind: onboard.EventLog, Message: fmt.Sprintf("burst line %d", i), Time: time.Now(),
		})
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, e)
	}
	for _, e := range stored {
		s.Hub.Publish(e)
	}
	last := stored[len(stored)-1].Seq

	want := first.ID + 1
	for want <= last {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("read event %d: %v", want, err)
		}
		if e.ID < want {
			continue // stored before the burst and sent at connect
		}
		if e.ID != want {
			t.Fatalf("got event %d; want %d, with none skipped", e.ID, want)
		}
		want++
	}
}

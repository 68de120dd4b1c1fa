package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"deployer/internal/testkit"
	"deployer/onboard"
)

// openRawStream sends a stream request on a plain TCP connection, so that
// the test controls how the connection ends.
func openRawStream(t *testing.T, s *testkit.Server, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
		path, testkit.Token)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream status %d", resp.StatusCode)
	}
	return conn, r
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStreamClientsThatGoAwayLeaveNothingBehind(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 5 * time.Second, Heartbeat: 20 * time.Millisecond})
	o, _ := s.Start(t, "quinn")

	// The server keeps one idle worker goroutine per recent connection for a
	// while, so the baseline is taken after as many connections as the test
	// opens have come and gone.
	var warm []net.Conn
	for i := 0; i < 22; i++ {
		conn, r := openRawStream(t, s, "/api/onboardings/"+o.ID+"/events")
		r.ReadString('\n')
		warm = append(warm, conn)
	}
	for _, conn := range warm {
		conn.Close()
	}
	waitFor(t, 2*time.Second, "warm-up streams closed", func() bool { return s.Hub.Subscribers() == 0 })
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	var conns []net.Conn
	for i := 0; i < 20; i++ {
		conn, r := openRawStream(t, s, "/api/onboardings/"+o.ID+"/events")
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		conns = append(conns, conn)
	}
	waitFor(t, 2*time.Second, "20 subscribers", func() bool { return s.Hub.Subscribers() == 20 })
	for i, conn := range conns {
		if i%2 == 1 {
			// Reset: close with linger 0, which sends RST instead of FIN.
			conn.(*net.TCPConn).SetLinger(0)
		}
		conn.Close()
	}
	waitFor(t, 2*time.Second, "subscribers back to 0", func() bool { return s.Hub.Subscribers() == 0 })
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines 2s after the streams closed, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStreamsResumeAfterLastEventID(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 30 * time.Millisecond})
	a, _ := s.Start(t, "rosa")
	b, _ := s.Start(t, "sven")
	owner := map[string]string{a.ID: "rosa", b.ID: "sven"}

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		id := a.ID
		if i%2 == 1 {
			id = b.ID
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readFromLastEventID(s, id, owner)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// readFromLastEventID reads one JSON stream opened with Last-Event-ID 2 to
// its end and checks that it starts at 3, rises by one, and carries only its
// own onboarding's events.
func readFromLastEventID(s *testkit.Server, id string, owner map[string]string) error {
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/onboardings/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testkit.Token)
	req.Header.Set("Last-Event-ID", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r := testkit.NewSSEReader(resp.Body)
	want := int64(3)
	for {
		e, err := r.Next()
		if err != nil {
			return fmt.Errorf("stream of %s: %v", owner[id], err)
		}
		if e.ID != want {
			return fmt.Errorf("stream of %s: id %d, want %d", owner[id], e.ID, want)
		}
		want++
		if e.Name == "done" {
			return nil
		}
		var ev struct {
			OnboardingID string `json:"onboarding_id"`
		}
		if err := json.Unmarshal([]byte(e.Data), &ev); err != nil {
			return err
		}
		if ev.OnboardingID != id {
			return fmt.Errorf("stream of %s got an event of onboarding %s", owner[id], ev.OnboardingID)
		}
	}
}

func TestStreamCarriesThousandsOfEventsWithFastHeartbeat(t *testing.T) {
	for _, mode := range []string{"json", "html"} {
		t.Run(mode, func(t *testing.T) {
			s := testkit.StartServer(t, testkit.Options{Delay: 30 * time.Second, Heartbeat: time.Millisecond})
			o, _ := s.Start(t, "tess")
			b := s.Login(t)
			path := "/api/onboardings/" + o.ID + "/events"
			var body io.ReadCloser
			if mode == "json" {
				body = s.Stream(t, path, nil).Body
			} else {
				resp, err := b.Client.Get(s.URL + "/onboardings/" + o.ID + "/events")
				if err != nil {
					t.Fatal(err)
				}
				body = resp.Body
			}
			defer body.Close()

			const injected = 2000
			injectorDone := make(chan struct{})
			go func() {
				defer close(injectorDone)
				var err error
				for i := 0; i < injected; i++ {
					var e onboard.Event
					e, err = s.DB.AppendEvent(context.Background(), onboard.Event{
						OnboardingID: o.ID, Stage: onboard.StageProvisioning, Status: onboard.StageRunning,
						Kind: onboard.EventLog, Message: fmt.Sprintf("line %d\r\nevent: forged\ndata: x", i), Time: time.Now(),
					})
					if err != nil {
						break
					}
					s.Hub.Publish(e)
				}
				if err != nil {
					t.Errorf("append event: %v", err)
				}
			}()
			defer func() { <-injectorDone }()

			r := testkit.NewSSEReader(body)
			var last int64
			seen := 0
			lastLine := fmt.Sprintf("line %d", injected-1)
			for {
				e, err := r.Next()
				if err != nil {
					t.Fatalf("after id %d: %v", last, err)
				}
				if e.Name == "forged" {
					t.Fatal("a message value forged an event")
				}
				if e.ID < last || e.ID == last && mode == "json" {
					t.Fatalf("id %d after %d", e.ID, last)
				}
				if mode == "json" && e.ID != last+1 && last != 0 {
					t.Fatalf("id %d after %d: an event is missing", e.ID, last)
				}
				last = e.ID
				seen++
				if strings.Contains(e.Data, lastLine) {
					break
				}
			}
			if mode == "json" && seen < injected {
				t.Errorf("%d events, want at least %d", seen, injected)
			}
			if r.Comments == 0 {
				t.Error("no heartbeat comment arrived")
			}
		})
	}
}

func TestInstantOnboardingStreamAlwaysReachesReady(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 0, Slots: 1000})
	for i := 0; i < 200; i++ {
		o, status := s.Start(t, fmt.Sprintf("fast%d", i))
		if status != http.StatusAccepted {
			t.Fatalf("start %d: status %d", i, status)
		}
		resp := s.Stream(t, "/api/onboardings/"+o.ID+"/events", nil)
		r := testkit.NewSSEReader(resp.Body)
		var final struct{ Status string }
		for {
			e, err := r.Next()
			if err != nil {
				t.Fatalf("onboarding %d: %v", i, err)
			}
			if e.Name == "done" {
				json.Unmarshal([]byte(e.Data), &final)
				break
			}
		}
		resp.Body.Close()
		if final.Status != "succeeded" {
			t.Fatalf("onboarding %d ended %q, want succeeded", i, final.Status)
		}
	}
}

func TestStreamOfUnknownOnboardingCloses(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	b := s.Login(t)
	for _, path := range []string{"/onboardings/nope/events", "/api/onboardings/nope/events"} {
		resp, err := b.Client.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r := testkit.NewSSEReader(resp.Body)
		e, err := r.Next()
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d, want 200 so that the client stops", path, resp.StatusCode)
		}
		if err != nil || e.Name != "done" || !e.HasID {
			t.Errorf("%s: event %+v, error %v; want a closing done event with an id", path, e, err)
		}
	}

	// A stream without a session closes the same way instead of redirecting.
	resp, err := http.Get(s.URL + "/onboardings/nope/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "event: done") {
		t.Errorf("stream without a session: status %d body %q, want 200 with the closing event", resp.StatusCode, body)
	}
}

func TestFinishedOnboardingStreamSendsFinalStateAndCloses(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	o, _ := s.Start(t, "uma")
	s.WaitFinished(t, o.ID, 10*time.Second)
	b := s.Login(t)
	resp, err := b.Client.Get(s.URL + "/onboardings/" + o.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := testkit.NewSSEReader(resp.Body)
	var names []string
	var lastID int64
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.ID <= lastID {
			t.Errorf("id %d after %d", e.ID, lastID)
		}
		lastID = e.ID
		names = append(names, e.Name)
		if e.Name == "done" && !strings.Contains(e.Data, `hx-swap-oob="true"`) {
			t.Errorf("done event does not replace the panel's parts: %q", e.Data)
		}
	}
	if got := strings.Join(names, ","); got != "snapshot,done" {
		t.Errorf("events %s, want snapshot,done", got)
	}
}

func TestCursorPastTheNewestEventSkipsNothing(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 30 * time.Millisecond})
	o, _ := s.Start(t, "xena")
	resp := s.Stream(t, "/api/onboardings/"+o.ID+"/events?after=9223372036854775806", nil)
	defer resp.Body.Close()
	r := testkit.NewSSEReader(resp.Body)
	stages := 0
	for {
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "done" {
			break
		}
		if strings.Contains(e.Data, `"kind":"stage"`) {
			stages++
		}
	}
	if stages == 0 {
		t.Error("a cursor past the newest event skipped every later stage event")
	}
}

func TestLogoutEndsTheAdminsStreams(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{Delay: 30 * time.Second})
	o, _ := s.Start(t, "yara")
	b := s.Login(t)
	resp, err := b.Client.Get(s.URL + "/onboardings/" + o.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := testkit.NewSSEReader(resp.Body)
	if e, err := r.Next(); err != nil || e.Name != "snapshot" {
		t.Fatalf("first event %+v, %v; want the snapshot", e, err)
	}
	if status, _ := b.Post(t, "/logout", url.Values{"_csrf": {b.CSRF}}); status >= 400 {
		t.Fatalf("logout: status %d", status)
	}

	closed := make(chan testkit.Event, 1)
	go func() {
		for {
			e, err := r.Next()
			if err != nil {
				close(closed)
				return
			}
			if e.Name == "done" {
				closed <- e
				return
			}
		}
	}()
	select {
	case e, ok := <-closed:
		if !ok || !strings.Contains(e.Data, "session ended") {
			t.Errorf("the stream ended with %+v, want a closing event that says the session ended", e)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stream stayed open 15 s after logout")
	}
}

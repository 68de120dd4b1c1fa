package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"deployer/internal/testkit"
)

// received is one event as a client parsed it.
type received struct {
	ID   int64
	Name string
	// At is when the client finished parsing the event.
	At time.Time
	// TS is the event's stored time from its JSON data, zero for HTML.
	TS time.Time
	// Size is the length of the event's data.
	Size int
}

// streamClient returns an HTTP client for many long streams: one connection
// per stream, no compression and no overall timeout.
func streamClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true,
		ResponseHeaderTimeout: 30 * time.Second,
	}}
}

// openStream opens an event stream and returns its body once the response
// headers arrived. The header may carry a bearer token or a cookie.
func openStream(ctx context.Context, client *http.Client, url string, header http.Header) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("open stream %s: status %d", url, resp.StatusCode)
	}
	return resp.Body, nil
}

// readEvents parses the stream with the test kit's strict reader and calls
// fn for each event until the stream ends, fails or fn returns false. It
// returns nil at the end of the stream.
func readEvents(body io.Reader, fn func(received) bool) error {
	r := testkit.NewSSEReader(body)
	for {
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		ev := received{ID: e.ID, Name: e.Name, At: time.Now(), Size: len(e.Data)}
		if e.Name == "event" {
			var data struct {
				TS string `json:"ts"`
			}
			if err := json.Unmarshal([]byte(e.Data), &data); err != nil {
				return fmt.Errorf("event %d: %w", e.ID, err)
			}
			if ev.TS, err = time.Parse(time.RFC3339Nano, data.TS); err != nil {
				return fmt.Errorf("event %d: ts: %w", e.ID, err)
			}
		}
		if !fn(ev) {
			return nil
		}
	}
}

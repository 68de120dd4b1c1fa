package handlers_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"deployer/handlers"
	"deployer/internal/testkit"
)

// expectedData returns what an event's data reads as after the SSE line
// rules: CR LF, CR and LF each end a line, the lines are joined with LF,
// and one final line ending is dropped.
func expectedData(data []byte) string {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.TrimSuffix(s, "\n")
}

func FuzzWriteEvent(f *testing.F) {
	f.Add(int64(1), []byte(`<div id="ob-1-head" hx-swap-oob="true">x</div>`))
	f.Add(int64(2), []byte("line one\nline two"))
	f.Add(int64(3), []byte("forged\n\nid: 99\nevent: done\ndata: gotcha\n\n"))
	f.Add(int64(4), []byte("cr\ronly\r\rand crlf\r\n"))
	f.Add(int64(5), []byte("\r\n"))
	f.Add(int64(6), []byte(""))
	f.Add(int64(7), []byte(": not a comment\nretry: 1\n"))
	f.Add(int64(8), []byte("nul\x00byte and \xff invalid UTF-8"))
	f.Add(int64(1<<62), []byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, id int64, data []byte) {
		if id < 0 {
			id = -(id + 1)
		}
		for _, name := range []string{"update", "done"} {
			var buf bytes.Buffer
			if err := handlers.WriteEvent(&buf, id, name, data); err != nil {
				t.Fatal(err)
			}
			r := testkit.NewSSEReader(bytes.NewReader(buf.Bytes()))
			e, err := r.Next()
			if err != nil {
				t.Fatalf("read %q: %v", buf.Bytes(), err)
			}
			if !e.HasID || e.ID != id {
				t.Errorf("id %d (present %v), want %d", e.ID, e.HasID, id)
			}
			if e.Name != name {
				t.Errorf("event name %q, want %q", e.Name, name)
			}
			if want := expectedData(data); e.Data != want {
				t.Errorf("data %q, want %q", e.Data, want)
			}
			if extra, err := r.Next(); err != io.EOF {
				t.Fatalf("a second event %+v (error %v) from data %q", extra, err, data)
			}
			if r.Retry != 0 {
				t.Errorf("data %q set the retry delay to %d", data, r.Retry)
			}
		}
	})
}

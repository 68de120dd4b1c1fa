// Package testkit helps the deployer's tests: a strict server-sent events
// reader and a server started on loopback over a fresh database.
package testkit

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Event is one parsed server-sent event.
type Event struct {
	ID    int64
	HasID bool
	Name  string
	Data  string
}

// SSEReader parses a stream strictly: every line must be a comment, a known
// field or the blank line that ends an event, and ids must be whole numbers.
type SSEReader struct {
	r *bufio.Reader
	// Comments counts comment lines, such as heartbeats.
	Comments int
	// Retry is the last retry field seen, in milliseconds.
	Retry int
}

// NewSSEReader reads events from r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next event that has data or a name; it returns io.EOF at
// the end of the stream and an error for any malformed line.
func (s *SSEReader) Next() (Event, error) {
	var e Event
	var data []string
	started := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && !started {
				return e, io.EOF
			}
			if err == io.EOF {
				return e, fmt.Errorf("stream ended inside an event: %q", line)
			}
			return e, err
		}
		line = strings.TrimSuffix(line, "\n")
		if strings.HasSuffix(line, "\r") {
			return e, fmt.Errorf("line ends with CR LF: %q", line)
		}
		switch {
		case line == "":
			if !started {
				continue
			}
			e.Data = strings.Join(data, "\n")
			if e.Name == "" && len(data) == 0 {
				e, data, started = Event{}, nil, false
				continue
			}
			return e, nil
		case strings.HasPrefix(line, ":"):
			s.Comments++
			continue
		}
		started = true
		field, value, ok := strings.Cut(line, ":")
		if !ok {
			return e, fmt.Errorf("line without a colon: %q", line)
		}
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return e, fmt.Errorf("id %q is not a whole number", value)
			}
			e.ID, e.HasID = n, true
		case "event":
			e.Name = value
		case "data":
			data = append(data, value)
		case "retry":
			n, err := strconv.Atoi(value)
			if err != nil {
				return e, fmt.Errorf("retry %q is not a whole number", value)
			}
			s.Retry = n
		default:
			return e, fmt.Errorf("unknown field %q", field)
		}
	}
}

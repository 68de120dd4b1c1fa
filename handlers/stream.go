package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"deployer/onboard"

	"github.com/gofiber/fiber/v2"
)

// localStreaming marks a request whose response is an event stream, which
// logs itself when it closes.
const localStreaming = "streaming"

// Event names of the streams. The page's sse-close matches streamDone.
const (
	streamSnapshot = "snapshot"
	streamUpdate   = "update"
	streamDone     = "done"
	// streamEvent names JSON events that carry one stored event each.
	streamEvent = "event"
)

// streamRetry is the reconnect delay the streams ask browsers for.
const streamRetry = 2 * time.Second

func isEventStream(c *fiber.Ctx) bool {
	return c.Method() == fiber.MethodGet && strings.HasSuffix(c.Path(), "/events") &&
		strings.Contains(c.Path(), "/onboardings/")
}

// streamCursor returns the last event id the client has, from the
// Last-Event-ID header or the after query parameter.
func streamCursor(c *fiber.Ctx) (int64, bool) {
	raw := c.Get("Last-Event-ID")
	if raw == "" {
		raw = c.Query("after")
	}
	if raw == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func setStreamHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Locals(localStreaming, true)
}

// streamOnboardingEvents sends an onboarding's progress as server-sent
// events: HTML fragments that replace the panel's parts by id for pages, or
// JSON events for the API. It subscribes before it reads the stored state,
// so that nothing falls between the two.
func (h *handler) streamOnboardingEvents(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	cursor, hasCursor := streamCursor(c)
	hub := h.Runner.Hub()
	sub := hub.Subscribe(id)
	o, err := h.Runner.Onboarding(userContext(c), id)
	if err != nil {
		hub.Unsubscribe(sub)
		msg := "This onboarding could not be read. Reload the page."
		if onboard.ErrorCode(err) == onboard.ENotFound {
			msg = "This onboarding does not exist. Check the address."
		}
		return h.closeStream(c, id, msg)
	}

	// A client cannot hold events that do not exist yet; a larger cursor
	// would make the stream skip the next ones.
	cursor = min(cursor, o.LastSeq)

	setStreamHeaders(c)
	s := &stream{
		h: h, id: id, json: isAPI(c), sub: sub, state: o, cursor: cursor, hasCursor: hasCursor,
		requestID: requestID(c), admin: actorFrom(c), opened: time.Now(), route: c.Route().Path,
		sessionHash: sessionHashFrom(c), sessionCheck: time.Now(),
	}
	c.Status(fiber.StatusOK)
	head := responseHead(c)
	// The stream takes the connection over from the server, so that it holds
	// no request buffers or copy goroutine of the server while it stays
	// open, and each event goes straight to the socket.
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(conn net.Conn) {
		w := bufio.NewWriterSize(deadlineWriter{conn}, streamBufferSize)
		if _, err := w.Write(head); err != nil {
			s.h.Runner.Hub().Unsubscribe(s.sub)
			return
		}
		s.run(w)
	})
	return nil
}

// streamBufferSize is the write buffer of a stream; a larger event goes to
// the socket directly.
const streamBufferSize = 2 << 10

// streamWriteTimeout bounds one write to a stream's socket, so that a client
// that stopped reading does not hold the stream open.
const streamWriteTimeout = 10 * time.Second

// deadlineWriter sets a write deadline before each write to the connection.
type deadlineWriter struct{ conn net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	if err := d.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return 0, err
	}
	return d.conn.Write(p)
}

// responseHead returns the status line and the headers set so far, for a
// response written on a hijacked connection. The body runs until the
// connection closes, so the head sets Connection: close.
func responseHead(c *fiber.Ctx) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	c.Response().Header.VisitAll(func(key, value []byte) {
		switch strings.ToLower(string(key)) {
		case "connection", "content-length", "transfer-encoding":
			return
		}
		b.Write(key)
		b.WriteString(": ")
		b.Write(value)
		b.WriteString("\r\n")
	})
	b.WriteString("Connection: close\r\n\r\n")
	return b.Bytes()
}

// closeStream responds to a stream that cannot be followed, because the
// onboarding is unknown or the session ended, with a message and the closing
// event, and status 200: the SSE extension reconnects forever after any
// other status.
func (h *handler) closeStream(c *fiber.Ctx, id, message string) error {
	setStreamHeaders(c)
	c.Locals(localStreaming, nil)
	data, err := h.closingData(id, isAPI(c), onboard.ENotFound, message)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	writeEvent(&out, 1, streamDone, data)
	c.Status(fiber.StatusOK)
	c.Response().SetBody(out.Bytes())
	return nil
}

// closingData returns the data of a closing event that ends a stream with a
// message instead of the onboarding's state: a JSON error for the API, or a
// fragment that replaces the panel's result block for pages.
func (h *handler) closingData(id string, api bool, code, message string) ([]byte, error) {
	if api {
		return json.Marshal(errorBody{Error: errorJSON{Code: code, Message: message}})
	}
	var buf bytes.Buffer
	target := "ob-" + id + "-result"
	if err := h.Views.Render(&buf, "partials/stream_closed", map[string]string{"Target": target, "Message": message}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sessionCheckInterval is how often a stream opened with a session checks
// that the session still exists, so that a logout ends the admin's streams.
const sessionCheckInterval = 5 * time.Second

// stream is one open event stream. Only its run goroutine touches it.
type stream struct {
	h         *handler
	id        string
	json      bool
	sub       *onboard.Subscription
	state     *onboard.Onboarding
	cursor    int64
	hasCursor bool
	// last is the id of the newest stored event the client has.
	last      int64
	requestID string
	admin     string
	opened    time.Time
	sent      int
	// route is the route pattern, for the log line written at close.
	route string
	// sessionHash identifies the admin session that opened the stream, or
	// is empty for the API token.
	sessionHash  string
	sessionCheck time.Time
}

// run owns the response writer: it selects over the subscription, the
// heartbeat and shutdown, and ends at the first failed write.
func (s *stream) run(w *bufio.Writer) {
	hub := s.h.Runner.Hub()
	reason := "client gone"
	defer func() {
		hub.Unsubscribe(s.sub)
		s.h.log.Info("Event stream closed", "request_id", s.requestID, "method", fiber.MethodGet, "route", s.route,
			"status", fiber.StatusOK, "onboarding_id", s.id, "admin", s.admin, "events_sent", s.sent,
			"duration_ms", time.Since(s.opened).Milliseconds(), "reason", reason)
	}()

	done, err := s.start(w)
	if err != nil || done {
		if done {
			reason = "onboarding finished"
		}
		return
	}
	heartbeat := time.NewTicker(s.h.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case e := <-s.sub.C():
			done, err := s.deliver(w, *e)
			if err == nil && !done && s.sub.Lagged() {
				done, err = s.catchUp(w)
			}
			if err != nil {
				return
			}
			if done {
				reason = "onboarding finished"
				return
			}
		case <-heartbeat.C:
			if !s.sessionActive() {
				reason = "session ended"
				s.sendClosing(w, onboard.EUnauthorized, "Your session ended. Log in again to follow this onboarding.")
				return
			}
			if _, err := w.WriteString(": heartbeat\n\n"); err != nil || w.Flush() != nil {
				return
			}
		case <-hub.Closed():
			reason = "server stopping"
			// The browser reconnects after the retry delay, with its last id.
			fmt.Fprintf(w, ": the deployer is stopping\nretry: %d\n\n", streamRetry.Milliseconds())
			w.Flush()
			return
		}
	}
}

// sessionActive reports whether the session that opened the stream still
// exists, checking at most every sessionCheckInterval.
func (s *stream) sessionActive() bool {
	if s.sessionHash == "" || time.Since(s.sessionCheck) < sessionCheckInterval {
		return true
	}
	s.sessionCheck = time.Now()
	return s.h.auth.SessionActive(context.Background(), s.sessionHash)
}

// sendClosing ends the stream with a message in place of the final state.
func (s *stream) sendClosing(w *bufio.Writer, code, message string) {
	data, err := s.h.closingData(s.id, s.json, code, message)
	if err != nil {
		return
	}
	if writeEvent(w, s.last+1, streamDone, data) == nil {
		w.Flush()
	}
}

// start sends what the client lacks: the whole panel for a page without a
// cursor, the stored events after the cursor for the API, and the closing
// event when the onboarding already finished.
func (s *stream) start(w *bufio.Writer) (done bool, err error) {
	fmt.Fprintf(w, "retry: %d\n\n", streamRetry.Milliseconds())
	if s.json {
		events, err := s.h.Runner.Events(context.Background(), s.id, s.cursor, 0)
		if err != nil {
			return false, err
		}
		s.last = s.cursor
		for _, e := range events {
			if e.Seq > s.state.LastSeq {
				break // a live event will bring it, applied to the state
			}
			if err := s.sendJSON(w, e); err != nil {
				return false, err
			}
		}
		s.last = max(s.last, s.state.LastSeq)
	} else {
		s.last = s.state.LastSeq
		switch {
		case !s.hasCursor:
			err = s.sendPanel(w, streamSnapshot, s.last)
		case s.cursor < s.last:
			err = s.sendPanel(w, streamUpdate, s.last)
		}
		if err != nil {
			return false, err
		}
	}
	if s.state.Finished() {
		return true, s.sendDone(w)
	}
	return false, w.Flush()
}

// deliver applies a live event and sends it; a gap in the sequence is
// filled from the store first.
func (s *stream) deliver(w *bufio.Writer, e onboard.Event) (done bool, err error) {
	if e.Seq <= s.last {
		return false, nil
	}
	if e.Seq > s.last+1 {
		return s.catchUp(w)
	}
	return s.apply(w, []onboard.Event{e})
}

// catchUp reads every stored event after the last one sent.
func (s *stream) catchUp(w *bufio.Writer) (done bool, err error) {
	events, err := s.h.Runner.Events(context.Background(), s.id, s.last, 0)
	if err != nil {
		return false, err
	}
	if len(events) == 0 {
		return false, nil
	}
	return s.apply(w, events)
}

func (s *stream) apply(w *bufio.Writer, events []onboard.Event) (done bool, err error) {
	for _, e := range events {
		s.state.Apply(e)
		s.last = e.Seq
		if s.json {
			if err := s.sendJSON(w, e); err != nil {
				return false, err
			}
		}
	}
	if !s.json {
		if err := s.sendPanel(w, streamUpdate, s.last); err != nil {
			return false, err
		}
	}
	if s.state.Finished() {
		return true, s.sendDone(w)
	}
	return false, w.Flush()
}

func (s *stream) sendJSON(w *bufio.Writer, e onboard.Event) error {
	fields, err := s.eventFields(e)
	if err != nil {
		return err
	}
	s.sent++
	return writeFields(w, e.Seq, streamEvent, fields)
}

// sendPanel sends every part of the panel, each replacing its element by id.
func (s *stream) sendPanel(w *bufio.Writer, name string, id int64) error {
	fields, err := s.panelFields()
	if err != nil {
		return err
	}
	s.sent++
	return writeFields(w, id, name, fields)
}

// sendDone sends the final state with the closing event, whose id follows
// the last stored event's.
func (s *stream) sendDone(w *bufio.Writer) error {
	var fields []byte
	var err error
	if s.json {
		var data []byte
		data, err = json.Marshal(doneJSON{
			onboardingJSON: newOnboardingJSON(s.state), Stage: s.state.CurrentStage().Name,
			TS: formatJSONTime(s.state.UpdatedAt),
		})
		fields = dataFields(data)
	} else {
		fields, err = s.panelFields()
	}
	if err != nil {
		return err
	}
	s.sent++
	if err := writeFields(w, s.last+1, streamDone, fields); err != nil {
		return err
	}
	return w.Flush()
}

// doneJSON is the data of a JSON stream's closing event: the onboarding,
// with the stage it ended at and the time of its last event, like every
// other event's data.
type doneJSON struct {
	onboardingJSON
	Stage string `json:"stage"`
	TS    string `json:"ts"`
}

// panelParts renders the panel's parts for out-of-band swaps.
func (h *handler) panelParts(o *onboard.Onboarding) ([]byte, error) {
	v := newPanelView(o, "")
	v.OOB = true
	var buf bytes.Buffer
	if err := h.Views.Render(&buf, "partials/panel_parts", v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeEvent writes one server-sent event.
func writeEvent(w io.Writer, id int64, name string, data []byte) error {
	return writeFields(w, id, name, dataFields(data))
}

// dataFields formats data as the data fields of an event. The data is split
// on CR, LF and CRLF, each line getting its own field, so that no value can
// end the event early or forge another.
func dataFields(data []byte) []byte {
	b := make([]byte, 0, len(data)+64)
	for len(data) > 0 {
		i := bytes.IndexAny(data, "\r\n")
		line := data
		if i >= 0 {
			line = data[:i]
		}
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
		if i < 0 {
			break
		}
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return b
}

// writeFields writes one server-sent event whose data fields dataFields
// formatted.
func writeFields(w io.Writer, id int64, name string, fields []byte) error {
	head := make([]byte, 0, 64)
	head = append(head, "id: "...)
	head = strconv.AppendInt(head, id, 10)
	head = append(head, "\nevent: "...)
	head = append(head, name...)
	head = append(head, '\n')
	if _, err := w.Write(head); err != nil {
		return err
	}
	if _, err := w.Write(fields); err != nil {
		return err
	}
	_, err := w.Write([]byte{'\n'})
	return err
}

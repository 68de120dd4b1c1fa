package handlers

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestRequestHeadsKeepOnlyChunked(t *testing.T) {
	heads := newRequestHeads()
	var head fasthttp.RequestHeader
	head.SetRequestURI("/api/testers")
	head.SetContentLength(10)
	heads.keep(&head)
	if kept := heads.take(&head); kept != nil {
		t.Errorf("head with a Content-Length kept as %s", kept.RequestURI())
	}

	head.SetContentLength(-1)
	heads.keep(&head)
	kept := heads.take(&head)
	if kept == nil {
		t.Fatal("head with a chunked body not kept")
	}
	if got := string(kept.RequestURI()); got != "/api/testers" {
		t.Errorf("kept request URI %q, want /api/testers", got)
	}
	if again := heads.take(&head); again != nil {
		t.Error("take returned the copy a second time")
	}
}

func TestRequestHeadsDropEarlierRequest(t *testing.T) {
	heads := newRequestHeads()
	var head fasthttp.RequestHeader
	head.SetRequestURI("/api/testers")
	head.SetContentLength(-1)
	heads.keep(&head)

	// The next request on the connection is read into the same header.
	head.SetRequestURI("/testers/bob/provision")
	head.SetContentLength(10)
	heads.keep(&head)
	if kept := heads.take(&head); kept != nil {
		t.Errorf("copy of the earlier request %s kept past the next head", kept.RequestURI())
	}
}

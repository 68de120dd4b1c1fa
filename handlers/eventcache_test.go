package handlers

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestEventCacheRendersOncePerEvent(t *testing.T) {
	c := newEventCache()
	var renders atomic.Int32
	render := func() ([]byte, error) {
		renders.Add(1)
		return []byte("parts at 7"), nil
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			data, err := c.get("ob", 7, render)
			if err != nil || string(data) != "parts at 7" {
				t.Errorf("get = %q, %v; want the parts at 7", data, err)
			}
		})
	}
	wg.Wait()
	if n := renders.Load(); n != 1 {
		t.Errorf("rendered %d times for 50 streams at one event; want 1", n)
	}
}

func TestEventCacheOlderEventRendersItsOwn(t *testing.T) {
	c := newEventCache()
	c.get("ob", 8, func() ([]byte, error) { return []byte("parts at 8"), nil })
	data, _ := c.get("ob", 7, func() ([]byte, error) { return []byte("parts at 7"), nil })
	if string(data) != "parts at 7" {
		t.Errorf("get at 7 = %q; want its own parts", data)
	}
	data, _ = c.get("ob", 8, func() ([]byte, error) { return nil, errors.New("rendered again") })
	if string(data) != "parts at 8" {
		t.Errorf("get at 8 after 7 = %q; want the cached parts at 8", data)
	}
}

func TestEventCacheKeepsNoError(t *testing.T) {
	c := newEventCache()
	if _, err := c.get("ob", 3, func() ([]byte, error) { return nil, errors.New("template failed") }); err == nil {
		t.Fatal("get returned no error from a failed render")
	}
	data, err := c.get("ob", 3, func() ([]byte, error) { return []byte("parts at 3"), nil })
	if err != nil || string(data) != "parts at 3" {
		t.Errorf("get after a failed render = %q, %v; want a new render", data, err)
	}
}

func TestEventCacheStaysBounded(t *testing.T) {
	c := newEventCache()
	for i := range eventCacheSize + 10 {
		c.get(string(rune('a'+i%26))+string(rune(i)), 1, func() ([]byte, error) { return []byte("x"), nil })
	}
	if n := len(c.entries); n > eventCacheSize {
		t.Errorf("cache holds %d onboardings; want at most %d", n, eventCacheSize)
	}
}

package handlers

import (
	"bytes"
	"sync"

	"github.com/gofiber/fiber/v2"
)

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// page is what the layout needs on every page.
type page struct {
	Title   string
	CSRF    string
	Admin   string
	Version string
	Nav     string
	Sim     bool
}

func (h *handler) page(c *fiber.Ctx, title, nav string) page {
	return page{
		Title: title, CSRF: csrfFrom(c), Admin: actorFrom(c), Version: h.cfg.Version,
		Nav: nav, Sim: h.sim != nil,
	}
}

// renderPage renders a full page; it is renderFragment under another name,
// so that call sites say what they send.
func (h *handler) renderPage(c *fiber.Ctx, status int, name string, data any) error {
	return h.renderFragment(c, status, name, data)
}

// renderFragment executes the template into a buffer first, so that a
// template error becomes a clean 500 instead of half a page.
func (h *handler) renderFragment(c *fiber.Ctx, status int, name string, data any) error {
	c.Response().ResetBody()
	if err := h.appendFragment(c, name, data); err != nil {
		return err
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return nil
}

// appendFragment renders a template after the response body written so
// far, such as an out-of-band swap beside an error message.
func (h *handler) appendFragment(c *fiber.Ctx, name string, data any) error {
	buf := bufferPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufferPool.Put(buf)
	if err := h.Views.Render(buf, name, data); err != nil {
		return err
	}
	// AppendBody copies, so the buffer can go back to the pool.
	c.Response().AppendBody(buf.Bytes())
	return nil
}

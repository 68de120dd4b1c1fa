// Package views holds the deployer's html/template files, embedded in the
// binary and parsed once at startup.
package views

import (
	"embed"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/template/html/v2"
)

//go:embed layouts pages partials
var files embed.FS

// Names of the templates the handlers render; New fails when one is missing.
var Names = []string{
	"pages/login", "pages/testers", "pages/tester", "pages/onboarding", "pages/audit",
	"pages/outbox", "pages/orphans", "pages/error", "pages/account", "pages/onboardings",
	"partials/capacity", "partials/panel", "partials/panel_parts", "partials/panel_result", "partials/tester_detail",
	"partials/testers_table", "partials/testers_card", "partials/sim", "partials/error", "partials/log",
	"partials/step_result", "partials/start_response", "partials/otp", "partials/stream_closed", "partials/orphans_table",
}

// Views renders the embedded templates. It is safe for concurrent use.
type Views struct {
	engine *html.Engine
}

// New parses every template and checks that each name in Names exists.
func New() (*Views, error) {
	engine := html.NewFileSystem(http.FS(files), ".html")
	engine.AddFuncMap(funcs)
	if err := engine.Load(); err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	for _, name := range Names {
		if engine.Templates.Lookup(name) == nil {
			return nil, fmt.Errorf("template %s is missing", name)
		}
	}
	return &Views{engine: engine}, nil
}

// Engine returns the template engine, for Fiber's Views setting.
func (v *Views) Engine() *html.Engine { return v.engine }

// Render executes the named template into w. Callers render into a buffer,
// so that an error leaves no half-written page.
func (v *Views) Render(w io.Writer, name string, data any) error {
	t := v.engine.Templates.Lookup(name)
	if t == nil {
		return fmt.Errorf("template %s is missing", name)
	}
	return t.Execute(w, data)
}

var funcs = map[string]any{
	"timeago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < 5*time.Second:
			return "just now"
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return t.UTC().Format("2006-01-02")
	},
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + strings.ReplaceAll(s[1:], "_", " ")
	},
	"words": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
}

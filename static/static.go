// Package static embeds the files the pages load: htmx 2.0.11 and its SSE
// extension 2.2.4, both from the npm registry (packages htmx.org and
// htmx-ext-sse, unchanged), and the deployer's own CSS and script.
package static

import "embed"

// FS holds the static files at its root.
//
//go:embed htmx.min.js sse.js app.js app.css htmx.LICENSE
var FS embed.FS

// Versions of the vendored libraries, shown in the README and checked by a
// test against the files.
const (
	HTMXVersion = "2.0.11"
	SSEVersion  = "2.2.4"
)

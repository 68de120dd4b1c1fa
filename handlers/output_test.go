package handlers_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	scriptTag       = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	ownScript       = regexp.MustCompile(`^<script src="/static/[a-z.]+\?v=\{\{\.Version\}\}" defer>$`)
	styleElement    = regexp.MustCompile(`(?i)<style\b`)
	styleAttribute  = regexp.MustCompile(`(?i)\sstyle\s*=`)
	handlerAttr     = regexp.MustCompile(`(?i)\s(on[a-z]+|hx-on[a-z:-]*|hx-vars)\s*=`)
	jsonAttr        = regexp.MustCompile(`(?s)\s(hx-vals|hx-headers|hx-request)\s*=\s*'([^']*)'`)
	templateAction  = regexp.MustCompile(`\{\{-?\s*([^}]*?)\s*-?\}\}`)
	htmxConfigMeta  = regexp.MustCompile(`<meta name="htmx-config" content='([^']*)'>`)
	serverIDActions = map[string]bool{".ID": true, ".CSRF": true, ".ResumeID": true}
)

// templateFiles returns every template file with its text.
func templateFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir("../views", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".html") {
			return err
		}
		raw, err := os.ReadFile(path)
		files[path] = string(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d templates, want the whole views folder", len(files))
	}
	return files
}

func TestTemplatesKeepDataOutOfCode(t *testing.T) {
	for path, text := range templateFiles(t) {
		for _, tagText := range scriptTag.FindAllString(text, -1) {
			if !ownScript.MatchString(tagText) {
				t.Errorf("%s: %s is not one of the deployer's own script files", path, tagText)
			}
		}
		if strings.Count(text, "<script") != strings.Count(text, "></script>") {
			t.Errorf("%s: a script element has content", path)
		}
		if styleElement.MatchString(text) || styleAttribute.MatchString(text) {
			t.Errorf("%s: inline style, which the Content-Security-Policy blocks", path)
		}
		if m := handlerAttr.FindString(text); m != "" {
			t.Errorf("%s: event handler attribute %q runs code from markup", path, strings.TrimSpace(m))
		}
		if strings.Contains(strings.ToLower(text), "javascript:") {
			t.Errorf("%s: a javascript: URL", path)
		}
		// JSON in attributes is parsed by htmx, so a quote in a value would
		// change its structure: only ids the server makes may go there.
		for _, attr := range jsonAttr.FindAllStringSubmatch(text, -1) {
			for _, action := range templateAction.FindAllStringSubmatch(attr[2], -1) {
				if !serverIDActions[action[1]] {
					t.Errorf("%s: %s puts {{%s}} into JSON", path, attr[1], action[1])
				}
			}
		}
	}
}

func TestHTMXConfiguredForThePolicy(t *testing.T) {
	head, err := os.ReadFile("../views/layouts/head.html")
	if err != nil {
		t.Fatal(err)
	}
	m := htmxConfigMeta.FindSubmatch(head)
	if m == nil {
		t.Fatal("the head has no htmx-config meta element")
	}
	var cfg map[string]any
	if err := json.Unmarshal(m[1], &cfg); err != nil {
		t.Fatalf("htmx-config %q: %v", m[1], err)
	}
	want := map[string]bool{"includeIndicatorStyles": false, "allowEval": false, "allowScriptTags": false,
		"selfRequestsOnly": true}
	for key, value := range want {
		if got, ok := cfg[key].(bool); !ok || got != value {
			t.Errorf("htmx config %s is %v, want %v", key, cfg[key], value)
		}
	}
}

func TestAppScriptWritesNoMarkup(t *testing.T) {
	script, err := os.ReadFile("../static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
		"Function(", `setAttribute("on`, `setAttribute("style`, "setTimeout(\"", ".style."} {
		if strings.Contains(string(script), sink) {
			t.Errorf("static/app.js uses %s", sink)
		}
	}
}

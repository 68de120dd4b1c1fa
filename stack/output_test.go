package stack

import (
	"strings"
	"testing"
)

func TestRedactSecrets(t *testing.T) {
	hash := "$2a$04$abcdefghijklmnopqrstuuOXq6mqmsCj0bT5Pt0w8HXJG5mFp3ZqC"
	cases := []struct {
		name, line, keep, hide string
	}{
		{"known secret", "token is hunter2-hunter2", "token is", "hunter2-hunter2"},
		{"bcrypt hash", "gate alice:" + hash, "gate alice:", hash},
		{"PEM marker", "-----BEGIN OPENSSH PRIVATE KEY-----", "(key block)", "OPENSSH"},
		{"password setting", "DB_PASSWORD=s3cret rest", "DB_PASSWORD=", "s3cret"},
		{"api key setting", "api_key: abc123", "api_key:", "abc123"},
		{"key body", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB", "", "b3BlbnNzaC1rZXkt"},
		{"plain words stay", "Setting up cockpit-ws (287-1) ...", "Setting up cockpit-ws (287-1) ...", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := redact(c.line, []string{"hunter2-hunter2"})
			if c.keep != "" && !strings.Contains(got, c.keep) {
				t.Errorf("redact(%q) = %q, lost %q", c.line, got, c.keep)
			}
			if c.hide != "" && strings.Contains(got, c.hide) {
				t.Errorf("redact(%q) = %q, still shows %q", c.line, got, c.hide)
			}
		})
	}
}

func TestOutputLinesCutLongLine(t *testing.T) {
	var got []string
	o := &outputLines{limits: lineLimits{maxLines: 5, maxBytes: 20, tail: 2}, emit: func(s string) { got = append(got, s) }}
	o.consume(strings.NewReader(strings.Repeat("y", 10000) + "\nshort\r\n\x1b[32mgreen\x1b[0m"))
	want := []string{strings.Repeat("y", 20) + " …(line cut)", "short", "green"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", got, want)
	}
	if o.lastLines() != "short | green" {
		t.Errorf("lastLines = %q, want the last two", o.lastLines())
	}
}

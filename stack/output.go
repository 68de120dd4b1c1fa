package stack

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Patterns of text that looks like a secret in install output.
var (
	// bcryptHash matches a bcrypt hash such as the login gate's.
	bcryptHash = regexp.MustCompile(`\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}`)
	// pemMarker matches the first and last line of a PEM block, such as
	// "-----BEGIN OPENSSH PRIVATE KEY-----".
	pemMarker = regexp.MustCompile(`-----(BEGIN|END) [A-Z0-9 ]*-----`)
	// secretSetting matches an assignment to a name that suggests a secret,
	// such as "password=hunter2" or "API_KEY: abc".
	secretSetting = regexp.MustCompile(`(?i)\b([a-z_]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key))(\s*[:=]\s*)\S+`)
	// keyMaterial matches a run of 40 or more base64 or hexadecimal
	// characters: the body of a key, a token or a hash when it mixes letters
	// and digits.
	keyMaterial = regexp.MustCompile(`[A-Za-z0-9+/_-]{40,}={0,2}`)
	// colourCode matches a terminal colour or cursor sequence.
	colourCode = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
)

// redactedText replaces every secret in a line.
const redactedText = "[redacted]"

// redact returns line with the given secrets and anything that looks like a
// key, a hash or a password setting replaced by "[redacted]".
func redact(line string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			line = strings.ReplaceAll(line, s, redactedText)
		}
	}
	if pemMarker.MatchString(line) {
		return redactedText + " (key block)"
	}
	line = bcryptHash.ReplaceAllString(line, redactedText)
	line = secretSetting.ReplaceAllString(line, "${1}${2}"+redactedText)
	return keyMaterial.ReplaceAllStringFunc(line, func(run string) string {
		if strings.ContainsAny(run, "0123456789") && strings.IndexFunc(run, unicode.IsLetter) >= 0 {
			return redactedText
		}
		return run
	})
}

// lineLimits bounds the output that reaches the stage log.
type lineLimits struct {
	maxLines int // lines passed on; later lines are counted and dropped
	maxBytes int // bytes of one line; the rest is cut
	tail     int // last lines kept for an error message
}

// outputLines reads command output line by line, cleans and redacts each
// line, passes up to maxLines of them on, and keeps the last few.
type outputLines struct {
	limits  lineLimits
	secrets []string
	emit    func(string)

	count int
	last  []string
}

// consume reads r to its end. Lines longer than maxBytes are cut at the
// limit and the rest of them skipped, so a line without newlines cannot
// grow memory.
func (o *outputLines) consume(r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	var line []byte
	cut := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !cut {
			line = append(line, chunk...)
			if len(line) > o.limits.maxBytes {
				line, cut = line[:o.limits.maxBytes], true
			}
		}
		switch {
		case err == nil:
			o.add(string(line), cut)
			line, cut = line[:0], false
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			if len(line) > 0 {
				o.add(string(line), cut)
			}
			return
		}
	}
}

// add cleans one line and passes it on.
func (o *outputLines) add(raw string, cut bool) {
	line := colourCode.ReplaceAllString(raw, "")
	line = strings.TrimRight(line, "\r\n\t ")
	line = strings.ToValidUTF8(line, "?")
	if cut {
		for len(line) > 0 && !utf8.ValidString(line) {
			line = line[:len(line)-1]
		}
		line += " …(line cut)"
	}
	line = redact(line, o.secrets)
	if strings.TrimSpace(line) == "" {
		return
	}

	o.count++
	o.last = append(o.last, line)
	if len(o.last) > o.limits.tail {
		o.last = o.last[1:]
	}
	switch {
	case o.count < o.limits.maxLines:
		o.emit(line)
	case o.count == o.limits.maxLines:
		o.emit("(install output truncated: later lines are not shown)")
	}
}

// lastLines returns the kept lines joined for an error message.
func (o *outputLines) lastLines() string {
	if len(o.last) == 0 {
		return "no output"
	}
	var b bytes.Buffer
	for i, l := range o.last {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(l)
	}
	return b.String()
}

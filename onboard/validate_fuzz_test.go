package onboard_test

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"deployer/onboard"
)

// checkFieldError fails unless err is an invalid-input error on the field
// with a short message in valid UTF-8.
func checkFieldError(t *testing.T, err error, field string) {
	t.Helper()
	if code := onboard.ErrorCode(err); code != onboard.EInvalid {
		t.Errorf("code %q, want %s", code, onboard.EInvalid)
	}
	if got := onboard.ErrorField(err); got != field {
		t.Errorf("field %q, want %s", got, field)
	}
	if msg := onboard.ErrorMessage(err); msg == "" || !utf8.ValidString(msg) || len(msg) > 300 {
		t.Errorf("message %q is empty, not UTF-8 or longer than 300 bytes", msg)
	}
}

// dnsLabel is the username rule written as a pattern, to compare with
// the validator's own checks.
var dnsLabel = regexp.MustCompile(`^[a-z][a-z0-9-]{1,30}[a-z0-9]$`)

func FuzzValidateUsername(f *testing.F) {
	for _, seed := range []string{"alice", "a-b", "ab", "abc-", "9abc", "Alice", "аlice", "al\x00ice",
		"alice\n", strings.Repeat("a", 32), strings.Repeat("a", 33), "<script>", "a--b", "a0--0", "xn--abc", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, username string) {
		err := onboard.ValidateUsername(username)
		// DNS reserves labels with hyphens in the third and fourth places
		// for internationalized names (RFC 5891, section 4.2.3.1).
		reserved := len(username) >= 4 && username[2:4] == "--"
		if valid := dnsLabel.MatchString(username) && !reserved; valid != (err == nil) {
			t.Fatalf("ValidateUsername(%q) = %v, but the DNS label pattern says valid=%v", username, err, valid)
		}
		if err != nil {
			checkFieldError(t, err, "username")
		}
	})
}

func FuzzValidateFullName(f *testing.F) {
	for _, seed := range []string{"Alice Example", `<script>alert(1)</script>`, "O'Brien \"Al\"", "Zoë",
		"line\r\nbreak", "nul\x00", "tab\there", "\u202Eevil", "\u2066isolated\u2069", "\xff\xfe",
		strings.Repeat("é", 100), strings.Repeat("x", 201), "", "\u2028"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := onboard.ValidateFullName(name)
		if err != nil {
			checkFieldError(t, err, "full_name")
			return
		}
		if name == "" || len(name) > onboard.FullNameMaxLen || !utf8.ValidString(name) {
			t.Fatalf("accepted %q: empty, over %d bytes or not UTF-8", name, onboard.FullNameMaxLen)
		}
		for _, r := range name {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' ||
				r >= '\u202A' && r <= '\u202E' || r >= '\u2066' && r <= '\u2069' {
				t.Fatalf("accepted %q with U+%04X, which can break a line or turn the text around", name, r)
			}
		}
	})
}

func FuzzValidateEmail(f *testing.F) {
	for _, seed := range []string{"alice@example.org", "o'brien+tag@example.org", "a@localhost", "a@b.c",
		`"Alice" <alice@example.org>`, "<a@example.org>", "a@example.org\r\nBcc: b@example.org", "a b@example.org",
		"a\x00@example.org", "\u202Ea@example.org", "аlice@example.org", `"quoted"@example.org`,
		"a(comment)@example.org", strings.Repeat("a", 250) + "@example.org", "", "@example.org", "a@"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, email string) {
		err := onboard.ValidateEmail(email)
		if err != nil {
			checkFieldError(t, err, "email")
			return
		}
		if len(email) > onboard.EmailMaxLen || !utf8.ValidString(email) {
			t.Fatalf("accepted %q: over %d bytes or not UTF-8", email, onboard.EmailMaxLen)
		}
		// An accepted address is one plain address, safe in a mail header.
		addr, perr := mail.ParseAddress(email)
		if perr != nil || addr.Address != email || addr.Name != "" {
			t.Fatalf("accepted %q, which net/mail does not read back as the same plain address", email)
		}
		for _, r := range email {
			if !unicode.IsGraphic(r) || unicode.IsSpace(r) || strings.ContainsRune("<>", r) {
				t.Fatalf("accepted %q with U+%04X", email, r)
			}
		}
		at := strings.LastIndexByte(email, '@')
		if at < 1 || !strings.Contains(email[at+1:], ".") {
			t.Fatalf("accepted %q without a local part or a dotted domain", email)
		}
	})
}

func FuzzValidateNodeID(f *testing.F) {
	for _, seed := range []string{"1", "42", "0", "01", "4294967295", "4294967296", "-1", "+1", "1.0", " 1",
		"1_000", "", "١"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, nodeID string) {
		err := onboard.ValidateNodeID(nodeID)
		n, perr := strconv.ParseUint(nodeID, 10, 32)
		canonical := perr == nil && n > 0 && strconv.FormatUint(n, 10) == nodeID
		if canonical != (err == nil) {
			t.Fatalf("ValidateNodeID(%q) = %v, but canonical 32-bit id=%v", nodeID, err, canonical)
		}
		if err != nil {
			checkFieldError(t, err, "node_id")
		}
	})
}

func FuzzNormalizeTesterInput(f *testing.F) {
	f.Add(" Alice ", " Alice Example ", " Alice@EXAMPLE.org ")
	f.Add("BOB", "", "b@B@Example.ORG")
	f.Add("\tcarol\n", "C", "no-at-sign")
	f.Fuzz(func(t *testing.T, username, fullName, email string) {
		in := onboard.TesterInput{Username: username, FullName: fullName, Email: email}
		in.Normalize()
		once := in
		in.Normalize()
		if in != once {
			t.Fatalf("Normalize is not idempotent: %+v then %+v", once, in)
		}
		// A username that passes after normalizing is a DNS label, whatever
		// the case and spaces it came with.
		if onboard.ValidateUsername(in.Username) == nil && !dnsLabel.MatchString(in.Username) {
			t.Fatalf("normalized username %q passes but is not a DNS label", in.Username)
		}
	})
}

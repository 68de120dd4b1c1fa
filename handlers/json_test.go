package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"deployer/internal/testkit"
)

func TestUnknownFieldMessage(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	cases := []struct {
		name, body, field, wantText string
		lowercaseHint               bool
	}{
		{"lowercase name", `{"username":"bob","node_id":"1"}`, "node_id",
			`Field "node_id" is unknown here. This address accepts username, full_name, email and account.`, false},
		{"capitalised known name", `{"Username":"bob"}`, "Username",
			`Field "Username" is unknown here. Field names are lowercase, so send "username" instead.`, true},
		{"capitals of no known name", `{"NICKNAME":"b"}`, "NICKNAME",
			`Field "NICKNAME" is unknown here. This address accepts username, full_name, email and account.`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := apiJSON(t, s, http.MethodPost, "/api/testers", tc.body)
			checkFieldError(t, r, tc.field, tc.wantText)
			_, _, msg := errorJSON(t, r.Body)
			if got := strings.Contains(msg, "lowercase"); got != tc.lowercaseHint {
				t.Errorf("message %q mentions lowercase: %v, want %v", msg, got, tc.lowercaseHint)
			}
		})
	}
	if n := testerCount(t, s); n != 0 {
		t.Errorf("%d testers stored after rejected bodies, want 0", n)
	}
}

// checkFieldError checks that r is a 400 naming the field with the message.
func checkFieldError(t *testing.T, r response, field, message string) {
	t.Helper()
	if r.Status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", r.Status, r.Body)
	}
	code, gotField, msg := errorJSON(t, r.Body)
	if code != "invalid" {
		t.Errorf("code %q, want invalid", code)
	}
	if gotField != field {
		t.Errorf("field %q, want %q", gotField, field)
	}
	if msg != message {
		t.Errorf("message %q, want %q", msg, message)
	}
}

package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"deployer/internal/testkit"
)

func TestIntegerFieldsNameValueAndRule(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	cases := []struct {
		name, path, field, value, wantText string
	}{
		{"exponent", "/api/sim/faults", "times", "1e9", "Times must be a whole number in plain digits, so send 1000000000 instead of 1e9."},
		{"decimal point", "/api/sim/faults", "times", "2.0", "Times must be a whole number in plain digits, so send 2 instead of 2.0."},
		{"fraction", "/api/sim/faults", "times", "1.5", "Times must be a whole number, not 1.5."},
		{"over 64 bits", "/api/sim/faults", "times", "99999999999999999999", "Times must be a whole number, not 99999999999999999999, which is out of range."},
		{"huge exponent", "/api/sim/faults", "times", "1e400", "Times must be a whole number, not 1e400, which is out of range."},
		{"slots exponent", "/api/sim/node", "total_slots", "1e2", "Total slots must be a whole number in plain digits, so send 100 instead of 1e2."},
		{"slots fraction", "/api/sim/node", "total_slots", "0.5", "Total slots must be a whole number, not 0.5."},
		{"over the range", "/api/sim/faults", "times", "1000000000", "Times must be between 0 and 1000, not 1000000000."},
		{"slots over the range", "/api/sim/node", "total_slots", "200000", "Total slots must be between 0 and 100000, not 200000."},
	}
	for _, tc := range cases {
		t.Run(tc.name+" in JSON", func(t *testing.T) {
			body := `{"` + tc.field + `":` + tc.value + `}`
			if tc.field == "times" {
				body = `{"stage":"installing","times":` + tc.value + `}`
			}
			r := apiJSON(t, s, http.MethodPost, tc.path, body)
			checkFieldError(t, r, tc.field, tc.wantText)
		})
		t.Run(tc.name+" in a form", func(t *testing.T) {
			form := url.Values{tc.field: {tc.value}}
			if tc.field == "times" {
				form.Set("stage", "installing")
			}
			r := send(t, s.URL, request{Method: http.MethodPost, Path: tc.path, Body: form.Encode(), Header: map[string]string{
				"Authorization": "Bearer " + testkit.Token, "Content-Type": "application/x-www-form-urlencoded",
			}})
			checkFieldError(t, r, tc.field, tc.wantText)
		})
	}

	r := apiJSON(t, s, http.MethodPost, "/api/sim/faults", `{"stage":"installing","times":"3"}`)
	checkFieldError(t, r, "times", "Times must be a whole number, not a JSON string.")
	r = apiJSON(t, s, http.MethodPost, "/api/sim/node", `{"total_slots":true}`)
	checkFieldError(t, r, "total_slots", "Total slots must be a whole number, not a JSON boolean.")
	if n := pendingFaults(t, s); n != 0 {
		t.Errorf("%d faults pending after rejected input, want 0", n)
	}
}

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

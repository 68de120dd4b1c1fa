package handlers_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"deployer/internal/testkit"
)

func TestCSRFFieldReadOnlyFromForms(t *testing.T) {
	s := testkit.StartServer(t, testkit.Options{})
	sess := loginAs(t, s, "admin", testkit.AdminPassword)

	var multipartBody bytes.Buffer
	mw := multipart.NewWriter(&multipartBody)
	for name, value := range map[string]string{"stage": "installing", "_csrf": sess.CSRF} {
		if err := mw.WriteField(name, value); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, contentType, body string
		wantStatus              int
	}{
		{"JSON body", "application/json", `{"stage":"installing","_csrf":"` + sess.CSRF + `"}`, http.StatusForbidden},
		{"URL-encoded form", "application/x-www-form-urlencoded",
			url.Values{"stage": {"installing"}, "_csrf": {sess.CSRF}}.Encode(), http.StatusOK},
		{"multipart form", mw.FormDataContentType(), multipartBody.String(), http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, s.URL, request{Method: http.MethodPost, Path: "/api/sim/faults", Cookie: sess.ID, Body: tc.body,
				Header: map[string]string{"Content-Type": tc.contentType}})
			if r.Status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.Status, tc.wantStatus, r.Body)
			}
			if tc.wantStatus != http.StatusForbidden {
				return
			}
			if _, _, msg := errorJSON(t, r.Body); !strings.Contains(msg, "no security token") {
				t.Errorf("message %q, want it to say the request has no security token", msg)
			}
		})
	}
	if n := pendingFaults(t, s); n != 1 {
		t.Errorf("%d faults pending, want 1, the installing fault that both forms set", n)
	}
}

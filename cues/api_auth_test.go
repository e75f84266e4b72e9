package cues

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPIRefusesProxiedWithoutToken: the cue API without a token, over real
// HTTP on loopback, refuses requests that show a proxy, even a header the
// old check ignored (Via, an empty X-Forwarded-For), and serves direct ones.
func TestAPIRefusesProxiedWithoutToken(t *testing.T) {
	e := newAPIEnv(t, nil)
	srv := httptest.NewServer(e.api)
	defer srv.Close()
	for _, tc := range []struct {
		header, value string
		status        int
	}{
		{"", "", http.StatusCreated},
		{"Via", "1.1 nginx", http.StatusForbidden},
		{"X-Forwarded-For", "", http.StatusForbidden},
		{"True-Client-IP", "203.0.113.9", http.StatusForbidden},
		{"CF-Connecting-IP", "203.0.113.9", http.StatusForbidden},
		{"X-Client-IP", "203.0.113.9", http.StatusForbidden},
		{"Sec-Fetch-Site", "cross-site", http.StatusForbidden},
	} {
		req, _ := http.NewRequest("POST", srv.URL+cuesPath, strings.NewReader(validCue))
		req.Header.Set("Content-Type", "application/json")
		if tc.header != "" {
			req.Header[tc.header] = []string{tc.value}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %q: status %d, want %d", tc.header, tc.value, resp.StatusCode, tc.status)
		}
	}
}

package adminauth_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/adminauth"
)

// served is what the protected handler answers.
const served = "served"

func startServer(t *testing.T, rule adminauth.Rule) string {
	t.Helper()
	srv := httptest.NewServer(rule.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, served)
	})))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRuleOverHTTP sends real requests from loopback to a server on
// loopback: without a token, any sign of a proxy or of a page of another
// site is refused; with a token, only the token counts.
func TestRuleOverHTTP(t *testing.T) {
	const token = "s3cret-token"
	type tc struct {
		name      string
		token     string // configured
		method    string
		header    [][2]string
		status    int
		challenge string // substring of WWW-Authenticate
		reason    string // substring of the error body
	}
	cases := []tc{
		{name: "no token, direct", method: "POST", status: 200},
		{name: "no token, direct GET", method: "GET", status: 200},
		{name: "no token, Sec-Fetch-Site same-origin", method: "POST", header: [][2]string{{"Sec-Fetch-Site", "same-origin"}, {"Origin", "http://127.0.0.1:8080"}}, status: 200},
		{name: "no token, Sec-Fetch-Site none", method: "GET", header: [][2]string{{"Sec-Fetch-Site", "none"}}, status: 200},
		{name: "no token, Origin localhost", method: "DELETE", header: [][2]string{{"Origin", "http://localhost:8080"}}, status: 200},
		{name: "no token, Origin [::1]", method: "POST", header: [][2]string{{"Origin", "http://[::1]:8080"}}, status: 200},
		{name: "no token, cross-site page", method: "POST", header: [][2]string{{"Sec-Fetch-Site", "cross-site"}}, status: 403, reason: "cross-site"},
		{name: "no token, same-site page", method: "POST", header: [][2]string{{"Sec-Fetch-Site", "same-site"}}, status: 403, reason: "same-site"},
		{name: "no token, foreign Origin (DNS rebinding)", method: "POST", header: [][2]string{{"Origin", "http://shop.example:8080"}}, status: 403, reason: "page"},
		{name: "no token, Origin null", method: "POST", header: [][2]string{{"Origin", "null"}}, status: 403, reason: "page"},
		{name: "token, right", token: token, method: "POST", header: [][2]string{{"Authorization", "Bearer " + token}}, status: 200},
		{name: "token, scheme in lower case", token: token, method: "POST", header: [][2]string{{"Authorization", "bearer " + token}}, status: 200},
		{name: "token, through a proxy", token: token, method: "POST", header: [][2]string{{"Authorization", "Bearer " + token}, {"X-Forwarded-For", "203.0.113.9"}, {"Via", "1.1 edge"}}, status: 200},
		{name: "token, from a page of another site", token: token, method: "POST", header: [][2]string{{"Authorization", "Bearer " + token}, {"Sec-Fetch-Site", "cross-site"}}, status: 200},
		{name: "token, missing", token: token, method: "POST", status: 401, challenge: `Bearer realm="shopcast"`, reason: "bearer token required"},
		{name: "token, wrong", token: token, method: "POST", header: [][2]string{{"Authorization", "Bearer " + token + "x"}}, status: 401, challenge: `error="invalid_token"`},
		{name: "token, prefix of it", token: token, method: "GET", header: [][2]string{{"Authorization", "Bearer " + token[:4]}}, status: 401, challenge: `error="invalid_token"`},
		{name: "token, Basic", token: token, method: "POST", header: [][2]string{{"Authorization", "Basic " + token}}, status: 401},
	}
	// Every proxy header refuses, with a value and empty, whatever its case
	// on the wire.
	for _, h := range append(adminauth.ProxyHeaders, "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "x-forwarded-server") {
		for _, v := range []string{"203.0.113.9", ""} {
			cases = append(cases, tc{
				name: fmt.Sprintf("no token, %s %q", h, v), method: "POST",
				header: [][2]string{{h, v}}, status: 403, reason: "proxy",
			})
		}
	}

	urls := map[string]string{"": startServer(t, adminauth.Rule{}), token: startServer(t, adminauth.Rule{Token: token})}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, urls[c.token]+"/api/v1/x", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range c.header {
				// Not Header.Set: the name goes on the wire as written.
				req.Header[h[0]] = append(req.Header[h[0]], h[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, c.status, body)
			}
			if c.status == 200 {
				if string(body) != served {
					t.Fatalf("body %q", body)
				}
				return
			}
			if got := resp.Header.Get("WWW-Authenticate"); c.status == 401 && (got == "" || !strings.Contains(got, c.challenge)) {
				t.Fatalf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if c.status == 403 && resp.Header.Get("WWW-Authenticate") != "" {
				t.Fatalf("403 with a challenge %q", resp.Header.Get("WWW-Authenticate"))
			}
			if !strings.Contains(string(body), c.reason) || !strings.HasPrefix(string(body), `{"error":`) {
				t.Fatalf("body %q, want a JSON error with %q", body, c.reason)
			}
			if strings.Contains(string(body), token) {
				t.Fatalf("the body shows the token: %s", body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

// TestRuleHTTP10 is nginx's proxy_pass as configured by default: HTTP/1.0
// to the upstream and none of the proxy headers.
func TestRuleHTTP10(t *testing.T) {
	u := startServer(t, adminauth.Rule{})
	addr := strings.TrimPrefix(u, "http://")
	for _, tc := range []struct {
		proto  string
		status int
	}{
		{"HTTP/1.0", 403},
		{"HTTP/1.1", 200},
	} {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(nc, "POST /api/v1/x %s\r\nHost: %s\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", tc.proto, addr)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		nc.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.proto, resp.StatusCode, tc.status, body)
		}
	}
}

// TestRuleRemote: without a token, a client that is not on loopback is
// refused (the listener here is on loopback, so the request is built).
func TestRuleRemote(t *testing.T) {
	for _, tc := range []struct {
		remote string
		ok     bool
	}{
		{"127.0.0.1:4000", true},
		{"127.9.9.9:4000", true},
		{"[::1]:4000", true},
		{"[::ffff:127.0.0.1]:4000", true},
		{"192.0.2.1:4000", false},
		{"[2001:db8::1]:4000", false},
		{"", false},
		{"garbage", false},
	} {
		r := httptest.NewRequest("POST", "/api/v1/x", nil)
		r.RemoteAddr = tc.remote
		ref := adminauth.Rule{}.Check(r)
		if (ref == nil) != tc.ok {
			t.Errorf("%q: refusal %v, want ok=%v", tc.remote, ref, tc.ok)
		}
		if ref != nil && (ref.Status != 403 || !errors.Is(ref, adminauth.ErrNotLocal)) {
			t.Errorf("%q: %d %v", tc.remote, ref.Status, ref)
		}
	}
	r := httptest.NewRequest("POST", "/api/v1/x", nil)
	r.RemoteAddr = "192.0.2.1:4000"
	r.Header.Set("Authorization", "Bearer t")
	if ref := (adminauth.Rule{Token: "t"}).Check(r); ref != nil {
		t.Errorf("with the token from anywhere: %v", ref)
	}
	if ref := (adminauth.Rule{Token: "u"}).Check(r); ref == nil || !errors.Is(ref, adminauth.ErrUnauthorized) {
		t.Errorf("wrong token: %v", ref)
	}
}

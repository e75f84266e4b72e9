package live

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/origin"
)

// rawRequest sends request bytes as they are, with no client-side cleaning
// of the path, and returns the response (nil and the error when the server
// closed the connection without one).
func rawRequest(t *testing.T, hostport string, req []byte) (*http.Response, []byte, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The write may fail once the server has answered a request it refused
	// before reading it all; the answer is still there to read.
	_, _ = conn.Write(req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, nil
}

func hostOf(base string) string {
	return strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
}

// publishFor publishes the fixture in a loop until the test ends.
func publishFor(t *testing.T, rtmpURL string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = testpub.Publish(ctx, rtmpURL, fixture, testpub.Options{Loops: 1000})
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// everyRoute lists a path under each route the HTTP port serves.
var everyRoute = []string{
	"/live/sec/", "/api/v1/streams/sec/cues/", "/watch/", "/studio/", "/assets/", "/sdk/", "/metrics/", "/healthz/", "/",
}

// TestE2ESecurityPathTraversal asks every route for files outside what it
// serves, in the encodings scanners use. No answer may carry a file of the
// host or of the source tree, and none may be a server error.
func TestE2ESecurityPathTraversal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t)
	publishAndWait(t, srv, "sec")
	secrets := []string{
		"root:x:0:0",                          // /etc/passwd
		"module github.com/shopcast/shopcast", // go.mod
		"package main",                        // this package's sources
		"[core]",                              // .git/config
	}
	escapes := []string{
		"../../../../../../etc/passwd",
		"..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
		"%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
		"%252e%252e/%252e%252e/%252e%252e/etc/passwd",
		"..%5c..%5c..%5c..%5cetc%5cpasswd",
		"....//....//....//....//etc/passwd",
		"..;/..;/..;/..;/etc/passwd",
		"../../go.mod", "../../../go.mod", "../main.go", "..%2f..%2fmain.go",
		"../../../.git/config", "%2e%2e%2f%2e%2e%2f%2e%2e%2f.git/config",
		"..%00/..%00/etc/passwd", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
		"index.m3u8/../../../../etc/passwd", "t/x/../../../../../etc/passwd",
	}
	for _, route := range everyRoute {
		for _, esc := range escapes {
			target := route + esc
			for _, method := range []string{"GET", "HEAD"} {
				req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, target)
				resp, body, err := rawRequest(t, hostOf(srv.HTTP), []byte(req))
				if err != nil {
					continue // closed without an answer: nothing leaked
				}
				// http.ServeMux redirects unclean paths to their clean form
				// on this server: follow it, as a browser would.
				if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, "/") {
					req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, loc)
					if resp, body, err = rawRequest(t, hostOf(srv.HTTP), []byte(req)); err != nil {
						continue
					}
					target += " -> " + loc
				}
				if resp.StatusCode >= 500 {
					t.Errorf("%s %s: %d", method, target, resp.StatusCode)
				}
				for _, s := range secrets {
					if bytes.Contains(body, []byte(s)) {
						t.Errorf("%s %s: %d leaks %q", method, target, resp.StatusCode, s)
					}
				}
				if resp.StatusCode == 200 && route != "/" && !strings.HasPrefix(route, "/live/") {
					// A 200 may only be a page or asset of the route itself.
					if strings.Contains(resp.Header.Get("Content-Type"), "octet-stream") {
						t.Errorf("%s %s: 200 %s", method, target, resp.Header.Get("Content-Type"))
					}
				}
			}
		}
	}
	// The stream is still served.
	if code, _, _ := e2etest.Get(t, srv.HTTP+"/live/sec/stream.m3u8"); code != 200 {
		t.Errorf("stream after the scan: %d", code)
	}
}

// TestE2ESecurityOversized sends oversized requests to every route: huge
// headers get 431, a URL longer than the header limit too, a long but
// allowed URL no server error, and a huge cue body 413.
func TestE2ESecurityOversized(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t)
	publishAndWait(t, srv, "sec")
	host := hostOf(srv.HTTP)
	for _, route := range everyRoute {
		// 1 MiB of headers: far over the origin's 64 KiB MaxHeaderBytes.
		big := strings.Repeat("a", 8<<10)
		var req strings.Builder
		fmt.Fprintf(&req, "GET %sindex.m3u8 HTTP/1.1\r\nHost: x\r\n", route)
		for i := range 128 {
			fmt.Fprintf(&req, "X-Pad-%d: %s\r\n", i, big)
		}
		req.WriteString("Connection: close\r\n\r\n")
		resp, _, err := rawRequest(t, host, []byte(req.String()))
		if err != nil {
			t.Errorf("huge headers on %s: no answer: %v", route, err)
		} else if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("huge headers on %s: %d, want 431", route, resp.StatusCode)
		}

		// A 1 MiB URL: over the header limit as well.
		long := route + strings.Repeat("a", 1<<20)
		resp, _, err = rawRequest(t, host, []byte("GET "+long+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		if err != nil {
			t.Errorf("1 MiB URL on %s: no answer: %v", route, err)
		} else if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusRequestURITooLong {
			t.Errorf("1 MiB URL on %s: %d, want 431 or 414", route, resp.StatusCode)
		}

		// A 16 KiB URL and query: within the limit, refused by the route
		// without a server error.
		mid := route + strings.Repeat("b", 8<<10) + "?" + strings.Repeat("_HLS_msn=1&", 700)
		resp, _, err = rawRequest(t, host, []byte("GET "+mid+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		if err != nil {
			t.Errorf("16 KiB URL on %s: no answer: %v", route, err)
		} else if resp.StatusCode >= 500 {
			t.Errorf("16 KiB URL on %s: %d", route, resp.StatusCode)
		}
	}

	// The media playlist with a 64-digit _HLS_msn and a thousand repeated
	// directives: 400, not a wait or an overflow.
	for _, q := range []string{
		"_HLS_msn=" + strings.Repeat("9", 64),
		strings.Repeat("_HLS_msn=1&", 1000),
		"_HLS_msn=1&_HLS_part=" + strings.Repeat("9", 30),
	} {
		if code, _, _ := e2etest.Get(t, srv.HTTP+"/live/sec/stream.m3u8?"+q); code != http.StatusBadRequest {
			t.Errorf("stream.m3u8?%.40s...: %d, want 400", q, code)
		}
	}

	// A cue body over max_cue_bytes (8 KiB by default): 413, with the
	// limit, and the stream's cues unchanged.
	api := srv.HTTP + "/api/v1/streams/sec/cues"
	huge := `{"v":1,"type":"product","product":{"sku":"` + strings.Repeat("x", 1<<20) + `"}}`
	resp, err := http.Post(api, "application/json", strings.NewReader(huge))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"limit":8192`) {
		t.Errorf("1 MiB cue: %d %s, want 413 with the limit", resp.StatusCode, b)
	}
	// Also when the client announces a huge length and sends it slowly:
	// the answer comes before the body is all there.
	hdr := fmt.Sprintf("POST /api/v1/streams/sec/cues HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", 1<<30)
	resp2, _, err := rawRequest(t, host, append([]byte(hdr), bytes.Repeat([]byte("x"), 64<<10)...))
	if err != nil {
		t.Errorf("1 GiB announced cue: no answer: %v", err)
	} else if resp2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("1 GiB announced cue: %d, want 413", resp2.StatusCode)
	}
	_, list, _ := e2etest.Get(t, api)
	if strings.Contains(string(list), `"id"`) {
		t.Errorf("a refused cue was stored: %s", list)
	}
}

// TestE2ESecurityPublishKey turns publish auth on: a wrong stream key is
// refused, the right one
// publishes under its public name, and neither key is ever logged nor
// servable as a stream name.
func TestE2ESecurityPublishKey(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const goodKey, badKey = "k3y-5ecret-0f-shop-7731", "wr0ng-k3y-guess-9920"
	srv := startServerDebug(t, func(c *server.Config) {
		c.PublishAuth, c.PublishKeys = true, map[string]string{goodKey: "shop"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, key := range []string{badKey, "shop", ""} {
		c, err := testpub.Dial(ctx, srv.RTMP+"/live/"+key)
		if err == nil {
			c.Close()
			t.Errorf("publish with stream key %q accepted", key)
		}
	}
	publishFor(t, srv.RTMP+"/live/"+goodKey)
	e2etest.WaitUntil(t, 15*time.Second, "the stream under its public name", func() bool {
		code, _, _ := e2etest.Get(t, srv.HTTP+"/live/shop/index.m3u8")
		return code == 200
	})
	logs := srv.Log.String()
	for _, k := range []string{goodKey, badKey} {
		if strings.Contains(logs, k) {
			t.Errorf("the log shows stream key %q", k)
		}
	}
	if !regexp.MustCompile(`(?i)refus|denied|unauthori|invalid`).MatchString(logs) {
		t.Errorf("no log line for the refused publisher")
	}
	// After the log check: the access log shows this request's path.
	if code, _, _ := e2etest.Get(t, srv.HTTP+"/live/"+goodKey+"/index.m3u8"); code != 404 {
		t.Errorf("the secret key is servable as a stream name: %d", code)
	}
}

// TestE2ESecurityCueToken sets a cue token: no
// token and a wrong token get 401 with the RFC 6750 challenge, the right one
// is accepted, and the token is never logged.
func TestE2ESecurityCueToken(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const token = "cue-t0ken-abcdef-42"
	srv := startServerDebug(t, func(c *server.Config) { c.CueToken = token })
	publishAndWait(t, srv, "sec")
	cue, err := os.ReadFile("../../testdata/cues_example.json")
	if err != nil {
		t.Fatal(err)
	}
	api := srv.HTTP + "/api/v1/streams/sec/cues"
	for _, c := range []struct {
		method, auth string
		status       int
		challenge    string
	}{
		{"POST", "", 401, `Bearer realm="shopcast"`},
		{"POST", "Bearer wrong", 401, `error="invalid_token"`},
		{"POST", "Bearer " + token + "x", 401, `error="invalid_token"`},
		{"POST", "Basic " + token, 401, `Bearer realm="shopcast"`},
		{"GET", "Bearer wrong", 401, `error="invalid_token"`},
		{"DELETE", "Bearer wrong", 401, `error="invalid_token"`},
		{"POST", "Bearer " + token, 201, ""},
	} {
		target := api
		if c.method == "DELETE" {
			target += "/sneaker-42"
		}
		req, _ := http.NewRequest(c.method, target, bytes.NewReader(cue))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s with %q: %d %s, want %d", c.method, c.auth, resp.StatusCode, b, c.status)
		}
		if c.challenge != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), c.challenge) {
			t.Errorf("%s with %q: WWW-Authenticate %q", c.method, c.auth, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if strings.Contains(srv.Log.String(), token) {
		t.Error("the log shows the cue token")
	}
}

// playSecret is the play secret of the play-token tests.
const playSecret = "play-5ecret-for-tests-0123456789"

// startPlayAuthServer starts shopcast with a play secret: a stream file
// without a token answers 403.
func startPlayAuthServer(t *testing.T) *e2etest.Server {
	t.Helper()
	srv := startServerDebug(t, func(c *server.Config) { c.PlaySecret = playSecret })
	if code, _, _ := e2etest.Get(t, srv.HTTP+"/live/none/index.m3u8"); code != http.StatusForbidden {
		t.Fatalf("a stream file without a token answered %d, not 403", code)
	}
	return srv
}

// TestE2ESecurityPlayToken plays a stream through a signed URL with
// gohlslib's client, and checks that a wrong, expired or missing token, and
// a token of another stream, get 403 on the multivariant and on the media
// files, and that the secret is never logged.
func TestE2ESecurityPlayToken(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startPlayAuthServer(t)
	publishFor(t, srv.RTMP+"/live/paid")
	auth := &origin.PlayAuth{Secret: []byte(playSecret)}
	good := auth.Token("paid", time.Now().Add(time.Hour))
	base := srv.HTTP + "/live/paid/"
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8?token="+good)
		return code == 200
	})

	forbidden := []string{
		"index.m3u8",
		"index.m3u8?token=" + auth.Token("paid", time.Now().Add(-time.Second)),
		"index.m3u8?token=" + auth.Token("other", time.Now().Add(time.Hour)),
		"index.m3u8?token=" + (&origin.PlayAuth{Secret: []byte("not-the-secret-0123456789")}).Token("paid", time.Now().Add(time.Hour)),
		"index.m3u8?token=" + good[:len(good)-2],
		"stream.m3u8", "stream.m3u8?token=" + good,
		"t/" + auth.Token("paid", time.Now().Add(-time.Second)) + "/stream.m3u8",
		"t/" + auth.Token("other", time.Now().Add(time.Hour)) + "/stream.m3u8",
	}
	for _, f := range forbidden {
		code, _, hdr := e2etest.Get(t, base+f)
		if code != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 403", f, code)
		}
		if cc := hdr.Get("Cache-Control"); !strings.Contains(cc, "max-age=1") {
			t.Errorf("GET %s: 403 with Cache-Control %q, want a short one", f, cc)
		}
	}

	// The variant URI carries the path token; every media file resolves
	// under it.
	_, mv, _ := e2etest.Get(t, base+"index.m3u8?token="+good)
	variant := regexp.MustCompile(`(?m)^(t/[^/\s]+/stream\.m3u8)$`).FindSubmatch(mv)
	if variant == nil {
		t.Fatalf("multivariant without a path-token variant URI:\n%s", mv)
	}
	mediaURL, _ := url.Parse(base + "index.m3u8?token=" + good)
	mediaURL = mediaURL.ResolveReference(&url.URL{Path: string(variant[1])})
	checker := newPlaylistChecker(t, strings.TrimSuffix(mediaURL.String(), "stream.m3u8"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	checker.run(ctx)
	cancel()
	for _, e := range checker.errs {
		t.Error(e)
	}
	if len(checker.parts) == 0 {
		t.Error("no part fetched under the path token")
	}
	// The same part under a wrong path token: 403.
	for p := range checker.parts {
		bad := base + "t/" + auth.Token("paid", time.Now().Add(-time.Minute)) + "/" + p
		if code, _, _ := e2etest.Get(t, bad); code != http.StatusForbidden {
			t.Errorf("part %s under an expired path token: %d", p, code)
		}
		break
	}

	// An independent player plays the signed URL.
	got := make(chan struct{}, 1)
	c := &gohlslib.Client{URI: base + "index.m3u8?token=" + good}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			c.OnDataH26x(tr, func(int64, int64, [][]byte) {
				select {
				case got <- struct{}{}:
				default:
				}
			})
			break
		}
		return nil
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-got:
	case err := <-wait2(c):
		t.Fatalf("gohlslib stopped on the signed URL: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("gohlslib decoded nothing from the signed URL")
	}
	if strings.Contains(srv.Log.String(), playSecret) {
		t.Error("the log shows the play secret")
	}
}

// TestE2ESecuritySlowloris holds many connections open by trickling their
// headers a byte at a time, as slowloris does: the binary's origin closes
// each once its header timeout (10 s) has passed, and serves players all
// along.
func TestE2ESecuritySlowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t)
	const n, limit = 100, 10 * time.Second
	type result struct {
		lived  time.Duration
		closed bool
	}
	results := make(chan result, n)
	for range n {
		go func() {
			conn, err := net.Dial("tcp", hostOf(srv.HTTP))
			if err != nil {
				results <- result{}
				return
			}
			defer conn.Close()
			start := time.Now()
			closed := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, conn); close(closed) }()
			req := "GET /live/x/index.m3u8 HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: a\r\n", 100)
			for i := 0; i < len(req); i++ {
				select {
				case <-closed:
					results <- result{time.Since(start), true}
					return
				case <-time.After(250 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{req[i]}); err != nil {
					results <- result{time.Since(start), true}
					return
				}
			}
			results <- result{time.Since(start), false}
		}()
	}
	// Players are served while the trickling connections are open.
	for range 3 {
		if code, _, _ := e2etest.Get(t, srv.HTTP+"/healthz"); code != 200 {
			t.Errorf("healthz during slowloris: %d", code)
		}
		time.Sleep(time.Second) // spreads the probes over the attack; not synchronisation
	}
	for range n {
		r := <-results
		if !r.closed {
			t.Fatalf("a trickling client was still open after %v", r.lived)
		}
		if r.lived > limit+3*time.Second {
			t.Errorf("a trickling client lived %v, header timeout %v", r.lived, limit)
		}
	}
}

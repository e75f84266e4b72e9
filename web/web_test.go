package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func newServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	New(cfg).Register(mux.Handle)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPages(t *testing.T) {
	srv := newServer(t, Config{Streams: func() []string { return []string{"shop", "a<b"} }})
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/", 200, []string{`href="/watch/shop"`, `href="/studio/shop"`, "a&lt;b"}},
		{"/", 200, []string{`<img class="poster" src="/live/shop/poster.jpg"`}},
		{"/watch/shop", 200, []string{`poster="/live/shop/poster.jpg"`, `<meta property="og:image" content="http://127.0.0.1:`, `/live/shop/poster.jpg">`}},
		{"/watch/shop", 200, []string{`data-stream="shop"`, "/assets/v/", "vendor/hls.light.min.js", "watch.js", `<video id="video"`}},
		{"/studio/shop", 200, []string{`data-stream="shop"`, "studio.js", `id="token-form"`}},
		{"/watch/shop", 200, []string{`id="from-start"`, `id="to-live"`, `id="scrub"`}},
		{"/replay/shop/20261203T114500Z", 200, []string{`data-stream="shop"`, `data-recording="20261203T114500Z"`, "replay.js", "vendor/hls.light.min.js", `<video id="video"`, `id="products"`, `id="carousel"`}},
		{"/replay/shop/20261203T114500Z-2", 200, []string{`data-recording="20261203T114500Z-2"`}},
		{"/replay/.hidden/20261203T114500Z", 404, nil},
		{"/replay/shop/..", 404, nil},
		{"/replay/shop/a%2Fb", 404, nil},
		{"/replay/shop", 404, nil},
		{"/watch/.hidden", 404, nil},
		{"/studio/a..b", 404, nil},
		{"/watch/a%20b", 404, nil},
		{"/nothing", 404, nil},
	}
	for _, tt := range tests {
		resp, body := get(t, srv.URL+tt.path)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.status)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: no %q in\n%s", tt.path, w, body)
			}
		}
	}
	// Past sales, newest first, capped.
	start := time.Date(2026, 12, 3, 11, 45, 0, 0, time.UTC)
	srv3 := newServer(t, Config{MaxReplays: 1, Replays: func() []Replay {
		return []Replay{
			{Stream: "spring", Start: start, Duration: 61500 * time.Millisecond, Products: 3, URL: "/recordings/spring/20261203T114500Z/index.m3u8"},
			{Stream: "older", Start: start.Add(-time.Hour), Duration: time.Minute, Products: 1, URL: "/recordings/older/x/index.m3u8"},
		}
	}})
	_, body := get(t, srv3.URL+"/")
	if !strings.Contains(body, `<a href="/replay/spring/20261203T114500Z">spring</a> · 2026-12-03 11:45 UTC · 1m2s · 3 products`) ||
		strings.Contains(body, "older") {
		t.Errorf("past sales: %s", body)
	}
	// No stream: the index says how to publish.
	srv2 := newServer(t, Config{})
	if _, body := get(t, srv2.URL+"/"); !strings.Contains(body, "No stream is live") {
		t.Errorf("empty index: %s", body)
	}
}

// A past sale links to its replay page: by its id, else by the id in its
// playlist's URL; without either it is listed without a link.
func TestReplayPage(t *testing.T) {
	tests := []struct {
		r    Replay
		want string
	}{
		{Replay{Stream: "spring", URL: "/recordings/spring/20261203T114500Z/index.m3u8"}, "/replay/spring/20261203T114500Z"},
		{Replay{Stream: "spring", ID: "20261203T114500Z-2", URL: "/elsewhere/x.m3u8"}, "/replay/spring/20261203T114500Z-2"},
		{Replay{Stream: "spring", URL: "/recordings/other/20261203T114500Z/index.m3u8"}, ""},
		{Replay{Stream: "spring", URL: "/recordings/spring/../index.m3u8"}, ""},
		{Replay{Stream: "a b", ID: "x"}, ""},
	}
	for _, tt := range tests {
		if got := tt.r.Page(); got != tt.want {
			t.Errorf("%+v: Page() = %q, want %q", tt.r, got, tt.want)
		}
	}
	srv := newServer(t, Config{Replays: func() []Replay { return []Replay{{Stream: "x<y", URL: "/y"}} }})
	if _, body := get(t, srv.URL+"/"); !strings.Contains(body, "<li>x&lt;y · ") || strings.Contains(body, `href="/y"`) {
		t.Errorf("a replay without an id: %s", body)
	}
}

func TestAssetsVersionedAndCompressed(t *testing.T) {
	p := New(Config{})
	mux := http.NewServeMux()
	p.Register(mux.Handle)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	url := srv.URL + p.assets.url("vendor/hls.light.min.js")
	resp, body := get(t, url, "Accept-Encoding", "gzip, br")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("versioned Cache-Control %q", cc)
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	want, _ := os.ReadFile("assets/vendor/hls.light.min.js")
	if !bytes.Equal(plain, want) {
		t.Error("gzip body differs from the file")
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q", ct)
	}
	etag := resp.Header.Get("ETag")
	if r2, _ := get(t, url, "Accept-Encoding", "gzip", "If-None-Match", etag); r2.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", r2.StatusCode)
	}
	// Unversioned and stale versions revalidate.
	for _, path := range []string{"/assets/watch.js", "/assets/v/000000000000/watch.js"} {
		r, _ := get(t, srv.URL+path, "Accept-Encoding", "gzip;q=0")
		if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != "" || strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q %q", path, r.StatusCode, r.Header.Get("Content-Encoding"), r.Header.Get("Cache-Control"))
		}
	}
	if r, _ := get(t, srv.URL+"/assets/nope.js"); r.StatusCode != 404 {
		t.Errorf("missing asset: %d", r.StatusCode)
	}
}

// The pages' JS and CSS, as a viewer downloads them (gzip), stay under the
// issue's 300 KB budget. A page loads one hls.js build, the light one or,
// with content steering, the full one: the larger counts.
func TestAssetBudget(t *testing.T) {
	s := newAssetSet()
	raw, wire := 0, 0
	hlsRaw, hlsWire := 0, 0
	for name, a := range s.files {
		if !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".css") {
			continue
		}
		n, w := len(a.body), len(a.body)
		if a.gz != nil {
			w = len(a.gz)
		}
		if name == "vendor/hls.min.js" || name == "vendor/hls.light.min.js" {
			hlsRaw, hlsWire = max(hlsRaw, n), max(hlsWire, w)
			continue
		}
		raw, wire = raw+n, wire+w
	}
	raw, wire = raw+hlsRaw, wire+hlsWire
	t.Logf("JS+CSS: %d bytes raw, %d bytes gzip", raw, wire)
	if wire > 300_000 {
		t.Errorf("JS+CSS on the wire %d bytes, budget 300000", wire)
	}
}

func TestCatalog(t *testing.T) {
	def, err := os.ReadFile("../testdata/catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(def, DefaultCatalog) {
		t.Error("web/catalog_default.json differs from testdata/catalog.json: copy it again")
	}
	srv := newServer(t, Config{})
	if resp, body := get(t, srv.URL+"/catalog.json"); resp.StatusCode != 200 || body != string(def) {
		t.Errorf("default catalog: %d", resp.StatusCode)
	}
	path := t.TempDir() + "/c.json"
	os.WriteFile(path, []byte(`{"products":[]}`), 0o644)
	srv = newServer(t, Config{Catalog: path})
	if _, body := get(t, srv.URL+"/catalog.json"); body != `{"products":[]}` {
		t.Errorf("configured catalog: %q", body)
	}
	os.WriteFile(path, []byte(`{"products":`), 0o644)
	if resp, _ := get(t, srv.URL+"/catalog.json"); resp.StatusCode != 500 {
		t.Errorf("broken catalog: %d", resp.StatusCode)
	}
}

// TestWatchSteeringBuild: with content steering on, the watch page loads
// the hls.js build that has the steering controller; without, the light
// one.
func TestWatchSteeringBuild(t *testing.T) {
	for _, tc := range []struct {
		steering  bool
		want, not string
	}{
		{false, "vendor/hls.light.min.js", "vendor/hls.min.js"},
		{true, "vendor/hls.min.js", "vendor/hls.light.min.js"},
	} {
		srv := newServer(t, Config{ContentSteering: tc.steering})
		_, body := get(t, srv.URL+"/watch/shop")
		if !strings.Contains(body, tc.want) || strings.Contains(body, tc.not) {
			t.Errorf("steering %v: the page does not load %s alone", tc.steering, tc.want)
		}
	}
}

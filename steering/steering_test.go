package steering

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// packagerMultivariant is what the packager renders for a stream with a
// source and one ladder rung.
const packagerMultivariant = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n" +
	"#EXT-X-STREAM-INF:BANDWIDTH=2400000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\nmedia.m3u8\n" +
	"#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,RESOLUTION=640x360,FRAME-RATE=30.000,CODECS=\"avc1.64001e,mp4a.40.2\"\nv/360p/media.m3u8\n"

func newTest(t *testing.T, cfg Config) *Steering {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRewrite(t *testing.T) {
	s := newTest(t, Config{Pathways: []Pathway{
		{ID: "a", URL: "https://a.example.com"},
		{ID: "b", URL: "https://cdn-b.example.com/shop/"},
	}})
	out := string(s.Rewrite("demo", "/live/demo/index.m3u8", []byte(packagerMultivariant)))

	var mv playlist.Multivariant
	if err := mv.Unmarshal([]byte(out)); err != nil {
		t.Fatalf("gohlslib: %v\n%s", err, out)
	}
	wantURIs := []string{
		"https://a.example.com/live/demo/media.m3u8",
		"https://a.example.com/live/demo/v/360p/media.m3u8",
		"https://cdn-b.example.com/shop/live/demo/media.m3u8",
		"https://cdn-b.example.com/shop/live/demo/v/360p/media.m3u8",
	}
	if len(mv.Variants) != len(wantURIs) {
		t.Fatalf("%d variants, want %d:\n%s", len(mv.Variants), len(wantURIs), out)
	}
	for i, v := range mv.Variants {
		if v.URI != wantURIs[i] {
			t.Errorf("variant %d: URI %q, want %q", i, v.URI, wantURIs[i])
		}
		// Identical attributes on every pathway.
		o := mv.Variants[i%2]
		if v.Bandwidth != o.Bandwidth || *v.AverageBandwidth != *o.AverageBandwidth || v.Resolution != o.Resolution || strings.Join(v.Codecs, ",") != strings.Join(o.Codecs, ",") {
			t.Errorf("variant %d differs from its twin on pathway a: %+v vs %+v", i, v, o)
		}
	}
	steer := regexp.MustCompile(`(?m)^#EXT-X-CONTENT-STEERING:SERVER-URI="([^"]+)",PATHWAY-ID="([^"]+)"$`).FindStringSubmatch(out)
	if steer == nil || steer[1] != "https://a.example.com/live/demo/steering.json" || steer[2] != "a" {
		t.Errorf("EXT-X-CONTENT-STEERING: %q", steer)
	}
	tags := regexp.MustCompile(`(?m)^#EXT-X-STREAM-INF:.*,PATHWAY-ID="([^"]+)",STABLE-VARIANT-ID="([^"]+)"$`).FindAllStringSubmatch(out, -1)
	want := [][2]string{{"a", "media"}, {"a", "v/360p/media"}, {"b", "media"}, {"b", "v/360p/media"}}
	if len(tags) != len(want) {
		t.Fatalf("%d tagged variants, want %d", len(tags), len(want))
	}
	for i, w := range want {
		if tags[i][1] != w[0] || tags[i][2] != w[1] {
			t.Errorf("variant %d: PATHWAY-ID %q STABLE-VARIANT-ID %q, want %q %q", i, tags[i][1], tags[i][2], w[0], w[1])
		}
	}
	// A rewrite of the rewritten playlist changes nothing.
	if again := string(s.Rewrite("demo", "/live/demo/index.m3u8", []byte(out))); strings.Count(again, "#EXT-X-CONTENT-STEERING") != 1 {
		t.Errorf("steering tag repeated:\n%s", again)
	}
}

func TestRewriteNoVariants(t *testing.T) {
	s := newTest(t, Config{Pathways: []Pathway{{ID: "a", URL: "http://a"}}})
	in := "#EXTM3U\n#EXT-X-VERSION:9\n"
	if out := string(s.Rewrite("x", "/live/x/index.m3u8", []byte(in))); out != in {
		t.Errorf("changed a playlist without variants: %q", out)
	}
}

func TestValidatePathways(t *testing.T) {
	for _, tc := range []struct {
		name string
		ps   []Pathway
		ok   bool
	}{
		{"none", nil, true},
		{"two", []Pathway{{ID: "a", URL: "https://a.example.com"}, {ID: "cdn-b_1.x", URL: "http://b:8080/p", Node: "n2"}}, true},
		{"empty id", []Pathway{{URL: "https://a"}}, false},
		{"bad id", []Pathway{{ID: "a b", URL: "https://a"}}, false},
		{"quote id", []Pathway{{ID: `a"`, URL: "https://a"}}, false},
		{"twice", []Pathway{{ID: "a", URL: "https://a"}, {ID: "a", URL: "https://b"}}, false},
		{"relative", []Pathway{{ID: "a", URL: "/live"}}, false},
		{"ftp", []Pathway{{ID: "a", URL: "ftp://a"}}, false},
		{"query", []Pathway{{ID: "a", URL: "https://a/?x=1"}}, false},
		{"user", []Pathway{{ID: "a", URL: "https://u:p@a/"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidatePathways(tc.ps); (err == nil) != tc.ok {
				t.Errorf("ValidatePathways = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestManifestHTTP(t *testing.T) {
	s := newTest(t, Config{TTL: 4 * time.Second, Pathways: []Pathway{
		{ID: "a", URL: "https://a.example.com"}, {ID: "b", URL: "https://b.example.com"},
	}})
	mux := http.NewServeMux()
	mux.Handle("/live/{name}/steering.json", s)
	for _, tc := range []struct {
		query  string
		status int
		reload string
	}{
		{"", 200, "https://a.example.com/live/demo/steering.json"},
		{"?_HLS_pathway=a&_HLS_throughput=5000000", 200, "https://b.example.com/live/demo/steering.json"},
		{"?_HLS_pathway=b", 200, "https://a.example.com/live/demo/steering.json"},
		{"?_HLS_pathway=gone", 200, "https://a.example.com/live/demo/steering.json"},
		{"?_HLS_pathway=a%20b", 400, ""},
		{"?_HLS_throughput=-1", 400, ""},
		{"?_HLS_throughput=fast", 400, ""},
	} {
		t.Run(tc.query, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/live/demo/steering.json"+tc.query, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				if !strings.Contains(rec.Body.String(), "_HLS_") {
					t.Errorf("400 does not name the parameter: %s", rec.Body)
				}
				return
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "private, no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			var raw map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatal(err)
			}
			if raw["VERSION"] != 1.0 || raw["TTL"] != 4.0 || raw["RELOAD-URI"] != tc.reload {
				t.Errorf("manifest %v", raw)
			}
			if p, ok := raw["PATHWAY-PRIORITY"].([]any); !ok || len(p) != 2 || p[0] != "a" || p[1] != "b" {
				t.Errorf("PATHWAY-PRIORITY %v", raw["PATHWAY-PRIORITY"])
			}
		})
	}
}

// TestProbeDropsDeadPathway: a pathway whose /healthz stops answering 200
// goes to the end of PATHWAY-PRIORITY within one TTL, and comes back.
func TestProbeDropsDeadPathway(t *testing.T) {
	var down atomic.Bool
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer b.Close()
	ttl := 2 * time.Second
	s := newTest(t, Config{TTL: ttl, ProbeTimeout: 500 * time.Millisecond, Pathways: []Pathway{
		{ID: "a", URL: a.URL}, {ID: "b", URL: b.URL},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFirst := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			got := s.Manifest("demo", "").PathwayPriority
			if got[0] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("PATHWAY-PRIORITY %v after %v, want %s first", got, within, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFirst("a", ttl)
	down.Store(true)
	waitFirst("b", ttl)
	if m := s.Manifest("demo", "a"); m.ReloadURI != b.URL+"/live/demo/steering.json" {
		t.Errorf("RELOAD-URI %q names the dead pathway", m.ReloadURI)
	}
	down.Store(false)
	waitFirst("a", ttl)
}

// TestNodeHealth: a pathway with a node the cluster knows takes its
// health from the cluster, whatever its probe says.
func TestNodeHealth(t *testing.T) {
	var n1 atomic.Bool
	n1.Store(true)
	s := newTest(t, Config{Pathways: []Pathway{
		{ID: "a", URL: "http://a", Node: "n1"}, {ID: "b", URL: "http://b", Node: "n2"}, {ID: "c", URL: "http://c", Node: "unknown"},
	}, NodeHealthy: func(node string) (bool, bool) {
		switch node {
		case "n1":
			return n1.Load(), true
		case "n2":
			return true, true
		}
		return false, false
	}})
	s.setProbed("c", false)
	if got := strings.Join(s.Manifest("x", "").PathwayPriority, ","); got != "a,b,c" {
		t.Errorf("priority %s, want a,b,c", got)
	}
	n1.Store(false)
	if got := strings.Join(s.Manifest("x", "").PathwayPriority, ","); got != "b,a,c" {
		t.Errorf("priority %s, want b,a,c", got)
	}
}

package cluster

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// proxyFixture is a registry that knows of a few leases (no NATS: the
// proxy reads only the registry's memory while the leases are fresh).
func proxyFixture(t *testing.T, owners map[string]Owner, moving ...string) *Proxy {
	t.Helper()
	r := NewRegistry(New(Config{Name: "here"}), RegistryConfig{URL: "http://here",
		Active: func(name string) bool { return name != "starting" }})
	t.Cleanup(r.Close)
	for name, o := range owners {
		o.Stream = name
		r.owners[name], r.seen[name] = o, time.Now()
		r.heard[o.Node] = time.Now()
	}
	for _, name := range moving {
		r.gone[name] = time.Now()
	}
	return NewProxy(r, time.Second)
}

func TestProxy(t *testing.T) {
	var upstreamHdr http.Header
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHdr = r.Header.Clone()
		h := w.Header()
		h.Set("Cache-Control", "max-age=12")
		h.Set("ETag", `"p1"`)
		h.Set("Content-Type", "video/mp4")
		h.Set("Connection", "x-hop")
		h.Set("X-Hop", "dropped")
		_, _ = io.WriteString(w, "part bytes "+r.URL.RequestURI())
	}))
	defer owner.Close()
	// An address nobody listens on: a dead owner.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	p := proxyFixture(t, map[string]Owner{
		"there":    {Node: "n1", URL: owner.URL, Live: true},
		"dead":     {Node: "n9", URL: dead, Live: true},
		"mine":     {Node: "here", URL: "http://here", Live: true},
		"starting": {Node: "here", URL: "http://here", Live: true},
		"silent":   {Node: "n7", URL: owner.URL, Live: true},
	}, "moving")
	// n7's heartbeat stopped a lease TTL ago: no request is sent to it
	// unless a member confirms it holds the stream (none answers here).
	p.reg.heard["n7"] = time.Now().Add(-time.Minute)
	tests := []struct {
		name, path string
		header     http.Header
		forwarded  bool
		code       int
		body       string
	}{
		{"owned elsewhere: proxied", "/live/there/part5.m4s?x=1", nil, true, 200, "part bytes /live/there/part5.m4s?x=1"},
		{"recordings too", "/recordings/there/r1/seg1.m4s", nil, true, 200, "part bytes /recordings/there/r1/seg1.m4s"},
		{"already forwarded: served here", "/live/there/part5.m4s", http.Header{ForwardedHeader: {"n2"}}, false, 0, ""},
		{"owner unreachable", "/live/dead/stream.m3u8", nil, true, 503, "does not answer"},
		{"moving", "/live/moving/stream.m3u8", nil, true, 503, "moving"},
		{"owner's heartbeat stale, unconfirmed: not proxied", "/live/silent/stream.m3u8", nil, true, 503, "moving"},
		{"owned here", "/live/mine/stream.m3u8", nil, false, 0, ""},
		{"claimed here, still starting", "/live/starting/stream.m3u8", nil, true, 503, "starting"},
		{"nobody owns it", "/live/nobody/stream.m3u8", nil, false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			name := strings.SplitN(strings.SplitN(tt.path, "/", 4)[2], "?", 2)[0]
			if got := p.Forward(rec, req, name); got != tt.forwarded {
				t.Fatalf("Forward %v, want %v", got, tt.forwarded)
			}
			if !tt.forwarded {
				if rec.Body.Len() > 0 {
					t.Errorf("wrote %q while leaving the request here", rec.Body.String())
				}
				return
			}
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("%d %q, want %d with %q", rec.Code, rec.Body.String(), tt.code, tt.body)
			}
			if tt.code == 200 {
				h := rec.Header()
				if h.Get("Cache-Control") != "max-age=12" || h.Get("ETag") != `"p1"` || h.Get("Content-Type") != "video/mp4" {
					t.Errorf("owner's headers not kept: %v", h)
				}
				if h.Get("X-Hop") != "" || h.Get("Connection") != "" {
					t.Errorf("hop-by-hop headers passed: %v", h)
				}
				if upstreamHdr.Get(ForwardedHeader) != "here" {
					t.Errorf("the owner got %s %q", ForwardedHeader, upstreamHdr.Get(ForwardedHeader))
				}
			} else if rec.Header().Get("Retry-After") == "" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("error headers %v", rec.Header())
			}
		})
	}
	if s := p.Stats(); s.Proxied != 2 || s.Unreachable != 1 || s.Moving != 3 {
		t.Errorf("stats %+v", s)
	}
}

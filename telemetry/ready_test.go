package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestReady(t *testing.T) {
	cases := []struct {
		name     string
		set      map[string]bool
		status   int
		wantBody string
	}{
		{"nothing yet", nil, 503, "not ready: cue_store, listeners\n"},
		{"store open, not listening", map[string]bool{ReadyCueStore: true}, 503, "not ready: listeners\n"},
		{"all up", map[string]bool{ReadyCueStore: true, ReadyListeners: true}, 200, "ok\n"},
		{"shutting down", map[string]bool{ReadyCueStore: true, ReadyListeners: false}, 503, "not ready: listeners\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReady(ReadyListeners, ReadyCueStore)
			for k, v := range c.set {
				r.Set(k, v)
			}
			srv := httptest.NewServer(r)
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || string(body) != c.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, c.status, c.wantBody)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

// TestServer checks the separate metrics port serves /metrics and /readyz.
func TestServer(t *testing.T) {
	m := &Metrics{Packager: &fakeStats{}}
	ready := NewReady(ReadyListeners)
	ready.Set(ReadyListeners, true)
	s := &Server{Address: "127.0.0.1:0", Metrics: m, Ready: ready}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	for path, want := range map[string]int{"/metrics": 200, "/readyz": 200, "/healthz": 200, "/live/x/index.m3u8": 404} {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

package origin

import (
	"net/http"
	"testing"

	"github.com/shopcast/shopcast/packager"
)

func TestStreamFiles(t *testing.T) {
	src := &fakeSource{err: packager.ErrNotFound}
	pulse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("pulse of " + r.PathValue("name")))
	})
	h := (&Server{Source: src, StreamFiles: map[string]http.Handler{"pulse.json": pulse}}).Handler()
	tests := []struct {
		target string
		status int
		body   string
	}{
		{"/live/shop/pulse.json", 200, "pulse of shop"},
		{"/live/sh%6Fp/pulse.json", 200, "pulse of shop"},
		{"/live/bad%2Fname/pulse.json", 404, ""},
		{"/live/shop/t/tok/pulse.json", 404, ""}, // not a stream file's shape
		{"/live/shop/stream.m3u8", 404, ""},      // the packager's, which has none
	}
	for _, tt := range tests {
		w := do(t, h, "GET", tt.target, nil)
		if w.Code != tt.status || (tt.body != "" && w.Body.String() != tt.body) {
			t.Errorf("%s: %d %q, want %d %q", tt.target, w.Code, w.Body, tt.status, tt.body)
		}
	}
	if n := len(src.requests()); n == 0 {
		t.Error("the packager was never asked for the other files")
	}
	for _, r := range src.requests() {
		if r.File == "pulse.json" {
			t.Errorf("the packager was asked for %+v", r)
		}
	}
}

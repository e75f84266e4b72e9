package origin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/shopcast/shopcast/packager"
)

// TestRewriteMultivariant: the hook rewrites multivariant playlists only,
// gets the stream and the request path, and the rewritten copy goes out
// without the packager's gzip form (which is of the old body).
func TestRewriteMultivariant(t *testing.T) {
	var got []string
	rewrite := func(stream, path string, body []byte) []byte {
		got = append(got, stream+" "+path)
		return append([]byte("#REWRITTEN\n"), body...)
	}
	for _, tc := range []struct {
		kind      packager.Kind
		target    string
		rewritten bool
	}{
		{packager.KindMultivariant, "/live/shop/index.m3u8", true},
		{packager.KindPlaylist, "/live/shop/stream.m3u8", false},
	} {
		got = nil
		h := (&Server{Source: &fakeSource{resp: playlistResponse(tc.kind)}, RewriteMultivariant: rewrite}).Handler()
		w := do(t, h, http.MethodGet, tc.target, http.Header{"Accept-Encoding": {"gzip"}})
		if w.Code != 200 {
			t.Fatalf("%s: %d", tc.target, w.Code)
		}
		if has := strings.HasPrefix(w.Body.String(), "#REWRITTEN\n"); has != tc.rewritten {
			t.Errorf("%s: rewritten %v, want %v (Content-Encoding %q)", tc.target, has, tc.rewritten, w.Header().Get("Content-Encoding"))
		}
		if tc.rewritten && (len(got) != 1 || got[0] != "shop /live/shop/index.m3u8") {
			t.Errorf("hook called with %q", got)
		}
	}
}

// TestLocalFiles: a local file is answered here even for a stream another
// server owns; the stream's other files are forwarded.
func TestLocalFiles(t *testing.T) {
	fw := &fakeForwarder{elsewhere: map[string]bool{"remote": true}}
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("here: " + r.PathValue("name")))
	})
	h := (&Server{Source: &fakeSource{resp: playlistResponse(packager.KindPlaylist)}, Forwarder: fw,
		LocalFiles: map[string]http.Handler{"steering.json": local}}).Handler()
	if w := do(t, h, http.MethodGet, "/live/remote/steering.json", nil); w.Code != 200 || w.Body.String() != "here: remote" {
		t.Errorf("local file of a remote stream: %d %q", w.Code, w.Body)
	}
	if w := do(t, h, http.MethodGet, "/live/remote/stream.m3u8", nil); w.Code != http.StatusTeapot {
		t.Errorf("playlist of a remote stream: %d, want it forwarded", w.Code)
	}
}

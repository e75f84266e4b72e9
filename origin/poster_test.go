package origin

import (
	"net/http"
	"testing"
	"time"
)

// fakePosters has a poster for the stream "shop" only.
type fakePosters struct{ jpeg []byte }

func (f fakePosters) PosterJPEG(stream string) ([]byte, time.Time, bool) {
	if stream != "shop" {
		return nil, time.Time{}, false
	}
	return f.jpeg, testModTime, true
}

func TestLivePoster(t *testing.T) {
	t.Parallel()
	jpeg := []byte("\xff\xd8\xff\xe0 not much of a picture \xff\xd9")
	src := &fakeSource{}
	s := &Server{Source: src, Posters: fakePosters{jpeg}, PosterMaxAge: 10 * time.Second}
	h := s.Handler()
	for _, tc := range []struct {
		name, method, path string
		hdr                http.Header
		status             int
		body               string
		cache              string
	}{
		{"poster", http.MethodGet, "/live/shop/poster.jpg", nil, 200, string(jpeg), "public, max-age=10"},
		{"head", http.MethodHead, "/live/shop/poster.jpg", nil, 200, "", "public, max-age=10"},
		{"not modified", http.MethodGet, "/live/shop/poster.jpg",
			http.Header{"If-Modified-Since": {testModTime.Format(http.TimeFormat)}}, 304, "", "public, max-age=10"},
		{"none yet", http.MethodGet, "/live/other/poster.jpg", nil, 404, "", cacheNotFound},
		{"post", http.MethodPost, "/live/shop/poster.jpg", nil, 405, "", cacheNoStore},
		{"bad name", http.MethodGet, "/live/shop/poster.png", nil, 404, "", cacheNotFound},
	} {
		rec := do(t, h, tc.method, tc.path, tc.hdr)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.status)
			continue
		}
		if got := rec.Header().Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.name, got, tc.cache)
		}
		if tc.status == 200 {
			if ct := rec.Header().Get("Content-Type"); ct != "image/jpeg" {
				t.Errorf("%s: Content-Type %q", tc.name, ct)
			}
			if tc.body != "" && rec.Body.String() != tc.body {
				t.Errorf("%s: body %q", tc.name, rec.Body.String())
			}
		}
	}
	if n := len(src.requests()); n != 0 {
		t.Errorf("the packager was asked %d times for a poster", n)
	}

	// Without Posters, a 404.
	rec := do(t, (&Server{Source: src}).Handler(), http.MethodGet, "/live/shop/poster.jpg", nil)
	if rec.Code != 404 {
		t.Errorf("without posters: %d", rec.Code)
	}
}

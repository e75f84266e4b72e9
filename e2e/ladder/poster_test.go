package ladder

import (
	"bytes"
	"image/jpeg"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLadderPoster: for a stream without a ladder, ffmpeg publishing 720p
// over RTMP, /live/NAME/poster.jpg is a JPEG of the source's size that Go's
// image/jpeg decodes, made again every poster_interval, briefly cacheable;
// the listing page and the watch page show it.
func TestLadderPoster(t *testing.T) {
	ladderNeedFFmpeg(t)
	srv := ladderServer(t, nil)
	url := srv.HTTP + "/live/shop/poster.jpg"
	if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("before the stream: %v %v, want a 404", resp, err)
	}
	ladderPublish(t, srv.RTMP+"/live/shop")

	var first *http.Response
	var body []byte
	ladderWait(t, 30*time.Second, "a poster", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			return false
		}
		first, body = resp, b.Bytes()
		return true
	})
	if ct := first.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := first.Header.Get("Cache-Control"); cc != "public, max-age=1" {
		t.Errorf("Cache-Control %q, want a max-age of poster_interval (1s)", cc)
	}
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the poster does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 720 {
		t.Errorf("poster %dx%d, the source is 1280x720", b.Dx(), b.Dy())
	}
	t.Logf("poster: %d bytes", len(body))

	// A newer poster a few seconds on.
	ladderWait(t, 15*time.Second, "a newer poster", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && resp.Header.Get("Last-Modified") != first.Header.Get("Last-Modified")
	})

	for page, want := range map[string]string{
		"/":           `src="/live/shop/poster.jpg"`,
		"/watch/shop": `poster="/live/shop/poster.jpg"`,
	} {
		b, err := ladderGet(srv.HTTP + page)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", page, want)
		}
	}
	if s := srv.Server.Ladder().Stats(); s.PosterErrors != 0 || s.Posters < 2 {
		t.Errorf("poster stats %+v", s)
	} else {
		t.Logf("%d posters, %v of CPU each", s.Posters, (s.PosterCPU / time.Duration(s.Posters)).Round(time.Millisecond))
	}
}

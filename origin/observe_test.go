package origin

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/shopcast/shopcast/packager"
)

func TestClassifyLive(t *testing.T) {
	cases := []struct {
		path, query  string
		stream, file string
		kind         RequestKind
	}{
		{"/live/s/index.m3u8", "", "s", "index.m3u8", KindMultivariant},
		{"/live/s/index.m3u8", "token=x", "s", "index.m3u8", KindMultivariant},
		{"/live/s/stream.m3u8", "", "s", "stream.m3u8", KindPlain},
		{"/live/s/stream.m3u8", "_HLS_skip=YES", "s", "stream.m3u8", KindDelta},
		{"/live/s/stream.m3u8", "_HLS_msn=3&_HLS_part=1", "s", "stream.m3u8", KindBlocking},
		{"/live/s/stream.m3u8", "_HLS_msn=3&_HLS_part=1&_HLS_skip=v2", "s", "stream.m3u8", KindBlockingDelta},
		{"/live/s/stream.m3u8", "x_HLS_msn=3", "s", "stream.m3u8", KindPlain},
		{"/live/s/t/123.abc/stream.m3u8", "_HLS_msn=3", "s", "stream.m3u8", KindBlocking},
		{"/live/s/t/123.abc/part42.m4s", "", "s", "part42.m4s", KindPart},
		{"/live/s/seg7.m4s", "", "s", "seg7.m4s", KindSegment},
		{"/live/s/init0.mp4", "", "s", "init0.mp4", KindInit},
		{"/live/s/index_ts.m3u8", "", "s", "index_ts.m3u8", KindMultivariant},
		{"/live/s/stream_ts.m3u8", "", "s", "stream_ts.m3u8", KindPlain},
		{"/live/s/seg7.ts", "", "s", "seg7.ts", KindSegment},
		{"/live/s/../etc/passwd", "", "s", "passwd", KindOther},
		{"/live/", "", "", "", KindOther},
	}
	for _, c := range cases {
		lr := classifyLive(c.path, c.query)
		if lr.Stream != c.stream || lr.File != c.file || lr.Kind != c.kind {
			t.Errorf("%s?%s: got %q %q %q, want %q %q %q", c.path, c.query, lr.Stream, lr.File, lr.Kind, c.stream, c.file, c.kind)
		}
	}
}

type recordObserver struct {
	mu  sync.Mutex
	got []LiveRequest
}

func (o *recordObserver) ObserveLive(_ *http.Request, lr LiveRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, lr)
}

// TestObserverSeesStatus checks that the Observer gets the status the client
// got, for stream files only.
func TestObserverSeesStatus(t *testing.T) {
	obs := &recordObserver{}
	s := &Server{Source: &fakeSource{err: packager.ErrNotFound}, Observer: obs}
	h := s.Handler()
	for _, target := range []string{"/live/s/index.m3u8", "/healthz"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	}
	if len(obs.got) != 1 || obs.got[0].Kind != KindMultivariant || obs.got[0].Status != http.StatusNotFound {
		t.Errorf("observed %+v, want one multivariant 404", obs.got)
	}
}

package origin

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// fakeSource answers every request with resp or err and records what it
// was asked.
type fakeSource struct {
	mu   sync.Mutex
	reqs []packager.Request
	resp *packager.Response
	err  error
}

func (f *fakeSource) Fetch(ctx context.Context, req packager.Request) (*packager.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return f.resp, f.err
}

func (f *fakeSource) requests() []packager.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]packager.Request(nil), f.reqs...)
}

// sourceFunc adapts a function to Source.
type sourceFunc func(ctx context.Context, req packager.Request) (*packager.Response, error)

func (f sourceFunc) Fetch(ctx context.Context, req packager.Request) (*packager.Response, error) {
	return f(ctx, req)
}

const testPlaylist = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"

var testModTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func playlistResponse(kind packager.Kind) *packager.Response {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte(testPlaylist))
	_ = zw.Close()
	return &packager.Response{
		Kind: kind, ContentType: "application/vnd.apple.mpegurl",
		Body: []byte(testPlaylist), Gzip: z.Bytes(),
		TargetDuration: 2 * time.Second, ModTime: testModTime,
	}
}

func mediaResponse(kind packager.Kind, body []byte) *packager.Response {
	return &packager.Response{
		Kind: kind, ContentType: "video/mp4", Body: body,
		TargetDuration: 2 * time.Second, ModTime: testModTime,
	}
}

// do sends one request through the handler and checks what every answer
// must satisfy.
func do(t *testing.T, h http.Handler, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if c := w.Header().Values("Set-Cookie"); len(c) > 0 {
		t.Errorf("%s %s: Set-Cookie %q", method, target, c)
	}
	return w
}

func TestLiveDirectivesReachSource(t *testing.T) {
	tests := []struct {
		target string
		status int
		want   *packager.Request // nil: the source must not be asked
	}{
		{"/live/shop/stream.m3u8", 200, &packager.Request{Client: "192.0.2.1", Stream: "shop", File: "stream.m3u8", MSN: -1, Part: -1}},
		{"/live/shop/stream.m3u8?_HLS_msn=5&_HLS_part=2&_HLS_skip=YES&cb=1",
			200, &packager.Request{Client: "192.0.2.1", Stream: "shop", File: "stream.m3u8", MSN: 5, Part: 2, Skip: packager.SkipYes}},
		{"/live/shop/stream.m3u8?_HLS_skip=v2", 200, &packager.Request{Client: "192.0.2.1", Stream: "shop", File: "stream.m3u8", MSN: -1, Part: -1, Skip: packager.SkipV2}},
		{"/live/shop/stream.m3u8?_HLS_part=2", 400, nil},
		{"/live/shop/stream.m3u8?_HLS_msn=x", 400, nil},
		{"/live/shop/stream.m3u8?_HLS_skip=NO", 400, nil},
		// On other files the directives are ignored.
		{"/live/shop/index.m3u8?_HLS_msn=x&_HLS_part=2", 200, &packager.Request{Client: "192.0.2.1", Stream: "shop", File: "index.m3u8", MSN: -1, Part: -1}},
		{"/live/shop/part7.m4s?_HLS_part=1", 200, &packager.Request{Client: "192.0.2.1", Stream: "shop", File: "part7.m4s", MSN: -1, Part: -1}},
		{"/live/shop/init0.mp4?_HLS_skip=x", 200, &packager.Request{Client: "192.0.2.1", Stream: "shop", File: "init0.mp4", MSN: -1, Part: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			src := &fakeSource{resp: playlistResponse(packager.KindPlaylist)}
			s := &Server{Source: src}
			w := do(t, s.Handler(), "GET", tt.target, nil)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			got := src.requests()
			if tt.want == nil {
				if len(got) != 0 {
					t.Fatalf("source asked %+v", got)
				}
				if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q on a 400", cc)
				}
				return
			}
			if len(got) != 1 || got[0] != *tt.want {
				t.Fatalf("source asked %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func TestLiveStatusMapping(t *testing.T) {
	tests := []struct {
		err    error
		status int
		cache  string
	}{
		{packager.ErrNotFound, 404, "public, max-age=1"},
		{fmt.Errorf("stream shop: %w", packager.ErrNotFound), 404, "public, max-age=1"},
		{packager.ErrBadRequest, 400, "no-store"},
		{fmt.Errorf("msn 99: %w", packager.ErrBadRequest), 400, "no-store"},
		{packager.ErrUnavailable, 503, "no-store"},
		{context.Canceled, 503, "no-store"},
		{context.DeadlineExceeded, 503, "no-store"},
		{errors.New("boom"), 500, "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			s := &Server{Source: &fakeSource{err: tt.err}}
			w := do(t, s.Handler(), "GET", "/live/shop/stream.m3u8?_HLS_msn=3", nil)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			if cc := w.Header().Get("Cache-Control"); cc != tt.cache {
				t.Errorf("Cache-Control %q, want %q", cc, tt.cache)
			}
			if ao := w.Header().Get("Access-Control-Allow-Origin"); ao != "*" {
				t.Errorf("Access-Control-Allow-Origin %q on an error", ao)
			}
		})
	}
}

func TestLiveClientGoneWritesNothing(t *testing.T) {
	s := &Server{Source: sourceFunc(func(ctx context.Context, _ packager.Request) (*packager.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", "/live/shop/stream.m3u8?_HLS_msn=9", nil)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" || w.Header().Get("Cache-Control") != "" {
		t.Errorf("wrote %d %q to a client that went away", w.Code, w.Body.String())
	}
}

func TestLiveCacheControl(t *testing.T) {
	tests := []struct {
		kind  packager.Kind
		td    time.Duration
		ended bool
		want  string
	}{
		{packager.KindBlockingPlaylist, 2 * time.Second, false, "public, max-age=12"},
		{packager.KindPart, 2 * time.Second, false, "public, max-age=12"},
		{packager.KindSegment, 2 * time.Second, false, "public, max-age=12"},
		{packager.KindInit, 2 * time.Second, false, "public, max-age=12"},
		{packager.KindPlaylist, 2 * time.Second, false, "public, max-age=1"},
		{packager.KindMultivariant, 2 * time.Second, false, "public, max-age=1"},
		{packager.KindPlaylist, 6 * time.Second, false, "public, max-age=3"},
		{packager.KindMultivariant, 4 * time.Second, false, "public, max-age=2"},
		{packager.KindPlaylist, time.Second, false, "public, max-age=1"},
		{packager.KindSegment, 4 * time.Second, false, "public, max-age=24"},
		{packager.KindPlaylist, 2 * time.Second, true, "public, max-age=12"},
		{packager.KindMultivariant, 2 * time.Second, true, "public, max-age=12"},
		{packager.KindBlockingPlaylist, 2 * time.Second, true, "public, max-age=12"},
		// A response without a target duration is cached briefly.
		{packager.KindPlaylist, 0, false, "public, max-age=1"},
		{packager.KindSegment, 0, false, "public, max-age=6"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("kind%d/%v/ended=%v", tt.kind, tt.td, tt.ended), func(t *testing.T) {
			resp := mediaResponse(tt.kind, []byte("x"))
			if isPlaylist(tt.kind) {
				resp = playlistResponse(tt.kind)
			}
			resp.TargetDuration, resp.Ended = tt.td, tt.ended
			file := map[packager.Kind]string{
				packager.KindMultivariant: "index.m3u8", packager.KindPlaylist: "stream.m3u8",
				packager.KindBlockingPlaylist: "stream.m3u8", packager.KindInit: "init0.mp4",
				packager.KindPart: "part1.m4s", packager.KindSegment: "seg1.m4s",
			}[tt.kind]
			s := &Server{Source: &fakeSource{resp: resp}}
			w := do(t, s.Handler(), "GET", "/live/shop/"+file, nil)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Cache-Control"); got != tt.want {
				t.Errorf("Cache-Control %q, want %q", got, tt.want)
			}
			vary := w.Header().Get("Vary")
			if isPlaylist(tt.kind) != (vary == "Accept-Encoding") {
				t.Errorf("Vary %q", vary)
			}
		})
	}
}

func TestLiveContentType(t *testing.T) {
	tests := []struct {
		file string
		resp *packager.Response
		want string
	}{
		{"index.m3u8", playlistResponse(packager.KindMultivariant), "application/vnd.apple.mpegurl"},
		{"stream.m3u8", playlistResponse(packager.KindPlaylist), "application/vnd.apple.mpegurl"},
		{"init0.mp4", mediaResponse(packager.KindInit, []byte("i")), "video/mp4"},
		{"seg3.m4s", mediaResponse(packager.KindSegment, []byte("s")), "video/mp4"},
		{"part3.m4s", mediaResponse(packager.KindPart, []byte("p")), "video/mp4"},
		{"seg3.ts", &packager.Response{Kind: packager.KindSegment, ContentType: "video/mp2t", Body: []byte("t"), TargetDuration: 2 * time.Second}, "video/mp2t"},
	}
	for _, tt := range tests {
		s := &Server{Source: &fakeSource{resp: tt.resp}}
		w := do(t, s.Handler(), "GET", "/live/shop/"+tt.file, nil)
		if got := w.Header().Get("Content-Type"); got != tt.want {
			t.Errorf("%s: Content-Type %q, want %q", tt.file, got, tt.want)
		}
	}
}

func TestLiveGzip(t *testing.T) {
	tests := []struct {
		acceptEncoding string
		noGzip         bool // the response carries no gzip body
		wantGzip       bool
	}{
		{"", false, false},
		{"gzip", false, true},
		{"gzip, deflate, br", false, true},
		{"br;q=1.0, GZIP;q=0.5", false, true},
		{"x-gzip", false, true},
		{"*", false, true},
		{"gzip;q=0", false, false},
		{"gzip;q=0, *", false, false},
		{"identity", false, false},
		{"br", false, false},
		{"gzip", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.acceptEncoding, func(t *testing.T) {
			resp := playlistResponse(packager.KindPlaylist)
			if tt.noGzip {
				resp.Gzip = nil
			}
			s := &Server{Source: &fakeSource{resp: resp}}
			hdr := http.Header{}
			if tt.acceptEncoding != "" {
				hdr.Set("Accept-Encoding", tt.acceptEncoding)
			}
			w := do(t, s.Handler(), "GET", "/live/shop/stream.m3u8", hdr)
			body := w.Body.Bytes()
			if got := w.Header().Get("Content-Encoding") == "gzip"; got != tt.wantGzip {
				t.Fatalf("Content-Encoding %q", w.Header().Get("Content-Encoding"))
			}
			if tt.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if string(body) != testPlaylist {
				t.Errorf("body %q", body)
			}
			if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(w.Body.Len()) {
				t.Errorf("Content-Length %s for %d bytes", cl, w.Body.Len())
			}
			if v := w.Header().Get("Vary"); v != "Accept-Encoding" {
				t.Errorf("Vary %q", v)
			}
		})
	}
}

// TestLiveOverHTTP checks ranges, HEAD and conditional requests through a
// real HTTP/1.1 server and client.
func TestLiveOverHTTP(t *testing.T) {
	media := []byte("0123456789abcdefghij")
	src := sourceFunc(func(_ context.Context, req packager.Request) (*packager.Response, error) {
		if req.File == "stream.m3u8" {
			return playlistResponse(packager.KindPlaylist), nil
		}
		return mediaResponse(packager.KindSegment, media), nil
	})
	ts := httptest.NewServer((&Server{Source: src}).Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	send := func(method, path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if c := resp.Header.Values("Set-Cookie"); len(c) > 0 {
			t.Errorf("Set-Cookie %q", c)
		}
		return resp, body
	}

	t.Run("range", func(t *testing.T) {
		resp, body := send("GET", "/live/shop/seg1.m4s", map[string]string{"Range": "bytes=2-5"})
		if resp.StatusCode != 206 || string(body) != "2345" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if cr := resp.Header.Get("Content-Range"); cr != "bytes 2-5/20" {
			t.Errorf("Content-Range %q", cr)
		}
		if cl := resp.Header.Get("Content-Length"); cl != "4" {
			t.Errorf("Content-Length %q", cl)
		}
	})
	t.Run("suffix range", func(t *testing.T) {
		resp, body := send("GET", "/live/shop/seg1.m4s", map[string]string{"Range": "bytes=-3"})
		if resp.StatusCode != 206 || string(body) != "hij" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("unsatisfiable range", func(t *testing.T) {
		resp, _ := send("GET", "/live/shop/seg1.m4s", map[string]string{"Range": "bytes=50-"})
		if resp.StatusCode != 416 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("head media", func(t *testing.T) {
		resp, body := send("HEAD", "/live/shop/seg1.m4s", nil)
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if resp.ContentLength != 20 || resp.Header.Get("Content-Type") != "video/mp4" {
			t.Errorf("Content-Length %d Content-Type %q", resp.ContentLength, resp.Header.Get("Content-Type"))
		}
		if lm := resp.Header.Get("Last-Modified"); lm != testModTime.Format(http.TimeFormat) {
			t.Errorf("Last-Modified %q", lm)
		}
		if resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("Accept-Ranges %q", resp.Header.Get("Accept-Ranges"))
		}
	})
	t.Run("head playlist", func(t *testing.T) {
		resp, body := send("HEAD", "/live/shop/stream.m3u8", nil)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(testPlaylist)) {
			t.Fatalf("%d %q Content-Length %d", resp.StatusCode, body, resp.ContentLength)
		}
	})
	t.Run("get media", func(t *testing.T) {
		resp, body := send("GET", "/live/shop/seg1.m4s", nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, media) || resp.ContentLength != 20 {
			t.Fatalf("%d %q %d", resp.StatusCode, body, resp.ContentLength)
		}
	})
	t.Run("media revalidation", func(t *testing.T) {
		resp, _ := send("GET", "/live/shop/seg1.m4s",
			map[string]string{"If-Modified-Since": testModTime.Format(http.TimeFormat)})
		if resp.StatusCode != 304 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("playlist never 304", func(t *testing.T) {
		// A playlist changes several times a second: a second-granular
		// If-Modified-Since must not turn it into a 304.
		resp, body := send("GET", "/live/shop/stream.m3u8",
			map[string]string{"If-Modified-Since": time.Now().Add(time.Hour).Format(http.TimeFormat)})
		if resp.StatusCode != 200 || string(body) != testPlaylist {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("playlist ignores range", func(t *testing.T) {
		resp, body := send("GET", "/live/shop/stream.m3u8", map[string]string{"Range": "bytes=0-3"})
		if resp.StatusCode != 200 || string(body) != testPlaylist {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}

func TestLiveCORS(t *testing.T) {
	src := &fakeSource{resp: playlistResponse(packager.KindPlaylist)}
	for _, origin := range []string{"", "https://shop.example"} {
		want := origin
		if want == "" {
			want = "*"
		}
		h := (&Server{Source: src, CORSOrigin: origin}).Handler()

		w := do(t, h, "GET", "/live/shop/stream.m3u8", http.Header{"Origin": {"https://shop.example"}})
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("GET: Allow-Origin %q, want %q", got, want)
		}
		for _, name := range []string{"Content-Length", "Content-Range", "Age", "Date"} {
			if !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), name) {
				t.Errorf("GET: Expose-Headers %q lacks %s", w.Header().Get("Access-Control-Expose-Headers"), name)
			}
		}

		before := len(src.requests())
		w = do(t, h, "OPTIONS", "/live/shop/seg4.m4s", http.Header{
			"Origin":                         {"https://shop.example"},
			"Access-Control-Request-Method":  {"GET"},
			"Access-Control-Request-Headers": {"range"},
		})
		if w.Code != http.StatusNoContent {
			t.Fatalf("OPTIONS: status %d", w.Code)
		}
		hdr := w.Header()
		if hdr.Get("Access-Control-Allow-Origin") != want ||
			!strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "GET") ||
			hdr.Get("Access-Control-Allow-Headers") != "range" ||
			hdr.Get("Access-Control-Max-Age") == "" {
			t.Errorf("OPTIONS: headers %v", hdr)
		}
		if len(src.requests()) != before {
			t.Error("a preflight reached the source")
		}
	}
}

func TestLiveMethodNotAllowed(t *testing.T) {
	src := &fakeSource{resp: playlistResponse(packager.KindPlaylist)}
	h := (&Server{Source: src}).Handler()
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		w := do(t, h, m, "/live/shop/stream.m3u8", nil)
		if w.Code != 405 || !strings.Contains(w.Header().Get("Allow"), "GET") {
			t.Errorf("%s: %d Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	if len(src.requests()) != 0 {
		t.Error("the source was asked")
	}
}

// TestLivePathTraversal sends raw request lines to a real server, so that
// neither a client nor httptest cleans the paths first.
func TestLivePathTraversal(t *testing.T) {
	src := &fakeSource{resp: playlistResponse(packager.KindPlaylist)}
	ts := httptest.NewServer((&Server{Source: src}).Handler())
	defer ts.Close()
	long := strings.Repeat("a", 64)

	tests := []struct {
		path   string
		status int
		stream string // for 200: the stream the source is asked for
	}{
		{"/live/shop/index.m3u8", 200, "shop"},
		{"/live/" + long + "/index.m3u8", 200, long},
		{"/live/%73hop/index.m3u8", 200, "shop"},
		{"/live/a.b-c_D9/stream.m3u8", 200, "a.b-c_D9"},
		{"/live/../etc/passwd", 404, ""},
		{"/live/a/../../x", 404, ""},
		{"/live/a/../b/index.m3u8", 404, ""},
		{"/live/./index.m3u8", 404, ""},
		{"/live/.shop/index.m3u8", 404, ""},
		{"/live/shop/./index.m3u8", 404, ""},
		{"/live/%2e%2e/index.m3u8", 404, ""},
		{"/live/%2E%2E/%2e%2e/etc/passwd", 404, ""},
		{"/live/shop/%2e%2e", 404, ""},
		{"/live/a..b/index.m3u8", 404, ""},
		{"/live/a%2fb/index.m3u8", 404, ""},
		{"/live/a%2Fb/index.m3u8", 404, ""},
		{"/live/shop/seg1%2f..%2f..%2fx.m4s", 404, ""},
		{"/live/shop/seg..1.m4s", 404, ""},
		{"/live/a%5cb/index.m3u8", 404, ""},
		{"//live/shop/index.m3u8", 404, ""},
		{"/live//shop/index.m3u8", 404, ""},
		{"/live/shop//index.m3u8", 404, ""},
		{"/live/shop/index.m3u8/", 404, ""},
		{"/x/../live/shop/index.m3u8", 404, ""},
		{"/live/shop/b/index.m3u8", 404, ""},
		{"/live/" + long + "a/index.m3u8", 404, ""},
		{"/live/" + strings.Repeat("a", 5000) + "/index.m3u8", 404, ""},
		{"/live/shop/seg" + strings.Repeat("1", 49) + ".m4s", 404, ""},
		{"/live/shop%00/index.m3u8", 404, ""},
		{"/live/shop/index.m3u8%00", 404, ""},
		{"/live/shop/index.m3u8%00.m4s", 404, ""},
		{"/live/%/index.m3u8", 400, ""}, // net/http refuses a malformed escape
		{"/live/shop/passwd", 404, ""},
		{"/live/shop/index.m3u", 404, ""},
		{"/live/shop/seg1.mp4", 404, ""},
		{"/live/shop", 404, ""},
		{"/live/", 404, ""},
		{"/live", 404, ""},
		{"/etc/passwd", 404, ""},
		{"/", 404, ""},
	}
	for _, tt := range tests {
		name := tt.path
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			before := len(src.requests())
			resp := rawGet(t, ts.Listener.Addr().String(), tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (Location %q)", resp.StatusCode, tt.status, resp.Header.Get("Location"))
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("redirect to %q", loc)
			}
			got := src.requests()[before:]
			if tt.status != 200 {
				if len(got) != 0 {
					t.Errorf("the source was asked %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Stream != tt.stream {
				t.Errorf("the source was asked %+v, want stream %q", got, tt.stream)
			}
		})
	}
}

// rawGet sends "GET path HTTP/1.1" exactly as given.
func rawGet(t *testing.T, addr, path string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if c := resp.Header.Values("Set-Cookie"); len(c) > 0 {
		t.Errorf("Set-Cookie %q", c)
	}
	return resp
}

func TestHealthzAndMountedHandlers(t *testing.T) {
	s := &Server{Source: &fakeSource{err: packager.ErrNotFound}}
	s.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "metrics")
	}))
	// /live/ belongs to the stream files whatever is mounted.
	s.Handle("/live/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a mounted handler got a stream path")
	}))
	h := s.Handler()

	if w := do(t, h, "GET", "/healthz", nil); w.Code != 200 || w.Body.String() != "ok" {
		t.Errorf("healthz: %d %q", w.Code, w.Body.String())
	}
	if w := do(t, h, "HEAD", "/healthz", nil); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD healthz: %d %q", w.Code, w.Body.String())
	}
	if w := do(t, h, "POST", "/healthz", nil); w.Code != 405 {
		t.Errorf("POST healthz: %d", w.Code)
	}
	if w := do(t, h, "GET", "/metrics", nil); w.Code != 200 || w.Body.String() != "metrics" {
		t.Errorf("metrics: %d %q", w.Code, w.Body.String())
	}
	if w := do(t, h, "GET", "/live/shop/index.m3u8", nil); w.Code != 404 {
		t.Errorf("stream: %d", w.Code)
	}
}

func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := &Server{Source: &fakeSource{err: packager.ErrNotFound}, Logger: log}
	do(t, s.Handler(), "GET", "/live/shop/stream.m3u8?_HLS_msn=1", nil)

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	for _, k := range []string{"remote", "method", "path", "status", "dur"} {
		if _, ok := line[k]; !ok {
			t.Errorf("no %q in %v", k, line)
		}
	}
	if line["status"] != 404.0 || line["path"] != "/live/shop/stream.m3u8" || line["level"] != "DEBUG" {
		t.Errorf("line %v", line)
	}

	// Above debug level nothing is logged for a request.
	buf.Reset()
	s.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	do(t, s.Handler(), "GET", "/live/shop/stream.m3u8", nil)
	if buf.Len() != 0 {
		t.Errorf("logged %q at info level", buf.String())
	}
}

// TestPanicAbortsOneRequest checks that a panicking Source costs one
// request, is logged with it, and leaves the server serving.
func TestPanicAbortsOneRequest(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	s := &Server{
		Source: sourceFunc(func(_ context.Context, req packager.Request) (*packager.Response, error) {
			if req.Stream == "boom" {
				panic("source bug")
			}
			return playlistResponse(packager.KindPlaylist), nil
		}),
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil)),
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	if resp, err := http.Get(ts.URL + "/live/boom/stream.m3u8"); err == nil {
		resp.Body.Close()
		t.Fatalf("a panicking request was answered %d", resp.StatusCode)
	}
	resp, err := http.Get(ts.URL + "/live/shop/stream.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after a panic: %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "/live/boom/stream.m3u8") {
		t.Errorf("log %q", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

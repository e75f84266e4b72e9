package origin

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

var testSecret = []byte("0123456789abcdef-test-secret")

// testNow is a fixed clock on a boundary of the default window.
var testNow = time.Unix(1_750_000_200, 0)

func testPlayAuth() *PlayAuth {
	return &PlayAuth{Secret: testSecret, now: func() time.Time { return testNow }}
}

func TestPlayTokenVerify(t *testing.T) {
	a := testPlayAuth()
	exp := testNow.Add(time.Hour)
	good := a.Token("shop", exp)
	other := (&PlayAuth{Secret: []byte("another-secret-of-16+")}).Token("shop", exp)
	e, mac, _ := strings.Cut(good, ".")
	for _, c := range []struct {
		name, stream, token string
		want                error
	}{
		{"good", "shop", good, nil},
		{"empty", "shop", "", ErrPlayTokenMissing},
		{"other stream", "shop2", good, ErrPlayTokenInvalid},
		{"other secret", "shop", other, ErrPlayTokenInvalid},
		{"expiry changed", "shop", "1" + e + "." + mac, ErrPlayTokenInvalid},
		{"mac cut", "shop", e + "." + mac[:20], ErrPlayTokenInvalid},
		{"mac padded", "shop", good + "=", ErrPlayTokenInvalid},
		{"expired", "shop", a.Token("shop", testNow), ErrPlayTokenExpired},
		{"expired long ago", "shop", a.Token("shop", time.Unix(1, 0)), ErrPlayTokenExpired},
		{"no dot", "shop", e + mac, ErrPlayTokenMalformed},
		{"no mac", "shop", e + ".", ErrPlayTokenMalformed},
		{"signed expiry", "shop", "+" + e + "." + mac, ErrPlayTokenMalformed},
		{"leading zero", "shop", "0" + e + "." + mac, ErrPlayTokenMalformed},
		{"huge expiry", "shop", "99999999999999999999." + mac, ErrPlayTokenMalformed},
		{"too long", "shop", good + strings.Repeat("A", maxPlayTokenLen), ErrPlayTokenMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := a.Verify(c.stream, c.token, testNow)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify(%q) = %v, want %v", c.token, err, c.want)
			}
			if err == nil && !got.Equal(exp) {
				t.Fatalf("expiry %v, want %v", got, exp)
			}
		})
	}
}

func TestPlayTokenWindows(t *testing.T) {
	a := testPlayAuth()
	w := int64(defaultPlayTokenWindow / time.Second)
	if testNow.Unix()%w != 0 {
		t.Fatal("testNow must be on a window boundary")
	}
	// NewToken rounds up: viewers arriving within one window get one token,
	// valid for at least TTL.
	at := func(d time.Duration) string {
		a.now = func() time.Time { return testNow.Add(d) }
		return a.NewToken("shop")
	}
	t1, t2 := at(10*time.Second), at(70*time.Second)
	if t1 != t2 {
		t.Errorf("tokens one minute apart in one window differ: %s %s", t1, t2)
	}
	if exp, err := a.Verify("shop", t2, testNow); err != nil || exp.Before(testNow.Add(70*time.Second+defaultPlayTokenTTL)) {
		t.Errorf("NewToken expiry %v %v, shorter than TTL", exp, err)
	}
	if t3 := at(defaultPlayTokenWindow + 10*time.Second); t3 == t1 {
		t.Errorf("tokens a window apart are equal")
	}
	a.now = func() time.Time { return testNow }

	// Path tokens round down, never past the viewer's expiry, and are shared
	// by viewers whose expiries fall in one window.
	base := time.Unix((testNow.Unix()/w+12)*w, 0)
	p1 := a.pathToken("shop", base.Add(10*time.Second), testNow)
	p2 := a.pathToken("shop", base.Add(200*time.Second), testNow)
	if p1 != p2 {
		t.Errorf("path tokens in one window differ: %s %s", p1, p2)
	}
	if exp, err := a.Verify("shop", p1, testNow); err != nil || !exp.Equal(base) {
		t.Errorf("path token expiry %v %v, want %v", exp, err, base)
	}
	// A viewer expiring within the current window keeps its exact expiry.
	soon := testNow.Add(30 * time.Second)
	if exp, err := a.Verify("shop", a.pathToken("shop", soon, testNow), testNow); err != nil || !exp.Equal(soon) {
		t.Errorf("near-expiry path token %v %v, want %v", exp, err, soon)
	}
}

func TestPlayAuthCheck(t *testing.T) {
	short := &PlayAuth{Secret: []byte("short-secret")}
	err := short.Check()
	if err == nil {
		t.Fatal("short secret accepted")
	}
	if strings.Contains(err.Error(), "short-secret") {
		t.Fatalf("error shows the secret: %v", err)
	}
	s := &Server{Address: "127.0.0.1:0", Source: &fakeSource{}, PlayAuth: short}
	if err := s.Start(); err == nil {
		_ = s.Shutdown(t.Context())
		t.Fatal("Start accepted a short play secret")
	}
	if err := testPlayAuth().Check(); err != nil {
		t.Fatal(err)
	}
}

const testMultivariant = "#EXTM3U\n#EXT-X-VERSION:9\n" +
	`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio.m3u8"` + "\n" +
	`#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="https://cdn.example/if.m3u8"` + "\n" +
	"#EXT-X-STREAM-INF:BANDWIDTH=1000\nstream.m3u8\n"

// TestPlayAuthLive plays through the handler as a player does: the
// multivariant with a query token, then every other file at the URIs it
// resolves to.
func TestPlayAuthLive(t *testing.T) {
	a := testPlayAuth()
	src := &fakeSource{}
	h := (&Server{Source: src, PlayAuth: a}).Handler()
	tok := a.Token("shop", testNow.Add(time.Hour))

	multi := playlistResponse(packager.KindMultivariant)
	multi.Body = []byte(testMultivariant)
	src.resp = multi
	w := do(t, h, http.MethodGet, "/live/shop/index.m3u8?token="+tok, http.Header{"Accept-Encoding": {"gzip"}})
	if w.Code != http.StatusOK {
		t.Fatalf("multivariant with token: %d", w.Code)
	}
	if w.Header().Get("Content-Encoding") != "" {
		t.Errorf("rewritten multivariant sent with the unrewritten gzip")
	}
	body := w.Body.String()
	m := regexp.MustCompile(`(?m)^t/([0-9]+\.[A-Za-z0-9_-]+)/stream\.m3u8$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("variant URI not under a path token:\n%s", body)
	}
	if !strings.Contains(body, `URI="t/`+m[1]+`/audio.m3u8"`) || !strings.Contains(body, `URI="https://cdn.example/if.m3u8"`) {
		t.Errorf("URI attributes rewritten wrongly:\n%s", body)
	}
	if string(multi.Body) != testMultivariant {
		t.Errorf("the shared response was modified")
	}
	pathTok := m[1]
	if exp, err := a.Verify("shop", pathTok, testNow); err != nil || exp.After(testNow.Add(time.Hour)) {
		t.Errorf("path token %v %v", exp, err)
	}

	// The media files at the URIs the player resolves.
	variant, _ := url.Parse("http://origin/live/shop/index.m3u8?token=" + tok)
	media := variant.ResolveReference(&url.URL{Path: "t/" + pathTok + "/stream.m3u8"})
	for _, c := range []struct {
		ref  string
		kind packager.Kind
		file string
		msn  int64
	}{
		{"stream.m3u8?_HLS_msn=5&_HLS_part=1", packager.KindBlockingPlaylist, "stream.m3u8", 5},
		{"init0.mp4", packager.KindInit, "init0.mp4", -1},
		{"seg4.m4s", packager.KindSegment, "seg4.m4s", -1},
		{"part17.m4s", packager.KindPart, "part17.m4s", -1},
	} {
		ref, _ := url.Parse(c.ref)
		u := media.ResolveReference(ref)
		if isPlaylist(c.kind) {
			src.resp = playlistResponse(c.kind)
		} else {
			src.resp = mediaResponse(c.kind, []byte("media"))
		}
		n := len(src.requests())
		w := do(t, h, http.MethodGet, u.RequestURI(), nil)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", u.RequestURI(), w.Code)
			continue
		}
		reqs := src.requests()
		if len(reqs) != n+1 || reqs[n].Stream != "shop" || reqs[n].File != c.file || reqs[n].MSN != c.msn {
			t.Errorf("GET %s reached the source as %+v", u.RequestURI(), reqs[n:])
		}
	}
}

func TestPlayAuthForbidden(t *testing.T) {
	a := testPlayAuth()
	src := &fakeSource{resp: mediaResponse(packager.KindPart, []byte("media"))}
	h := (&Server{Source: src, PlayAuth: a}).Handler()
	good := a.Token("shop", testNow.Add(time.Hour))
	for _, target := range []string{
		"/live/shop/index.m3u8",
		"/live/shop/index.m3u8?token=",
		"/live/shop/index.m3u8?token=garbage",
		"/live/shop/index.m3u8?token=" + a.Token("shop", testNow.Add(-time.Second)),
		"/live/shop/index.m3u8?token=" + a.Token("other", testNow.Add(time.Hour)),
		"/live/shop/index.m3u8?tok=" + good,
		"/live/shop/stream.m3u8?token=" + good, // media files need the path token
		"/live/shop/part1.m4s",
		"/live/shop/t//part1.m4s",
		"/live/shop/t/garbage/part1.m4s",
		"/live/shop/t/" + a.Token("shop", testNow) + "/part1.m4s",
		"/live/other/t/" + good + "/part1.m4s",
		"/live/shop/t/" + good + "%00/part1.m4s",
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
			w := do(t, h, method, target, nil)
			if w.Code != http.StatusForbidden {
				t.Errorf("%s %s: %d, want 403", method, target, w.Code)
			}
			if cc := w.Header().Get("Cache-Control"); cc != cacheForbidden {
				t.Errorf("%s %s: Cache-Control %q", method, target, cc)
			}
			if w.Header().Get("Access-Control-Allow-Origin") == "" {
				t.Errorf("%s %s: 403 without CORS: players cannot read it", method, target)
			}
		}
	}
	if n := len(src.requests()); n != 0 {
		t.Errorf("%d forbidden requests reached the source", n)
	}
	// Paths that are no stream file stay 404, token or not.
	for _, target := range []string{
		"/live/shop/t/" + good + "/evil.txt",
		"/live/shop/t/" + good + "/../index.m3u8",
		"/live/../t/" + good + "/index.m3u8",
		"/live/shop/t/" + good + "/x/part1.m4s",
	} {
		if w := do(t, h, http.MethodGet, target, nil); w.Code != http.StatusNotFound && w.Code != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 404 or 403", target, w.Code)
		}
	}
	// The path form answers 200 with a good token, also for the
	// multivariant, whose URIs then need no change.
	src.resp = playlistResponse(packager.KindMultivariant)
	src.resp.Body = []byte(testMultivariant)
	w := do(t, h, http.MethodGet, "/live/shop/t/"+good+"/index.m3u8", nil)
	if w.Code != http.StatusOK || w.Body.String() != testMultivariant {
		t.Errorf("path-form multivariant: %d\n%s", w.Code, w.Body.String())
	}
}

func TestPlayAuthOff(t *testing.T) {
	// Without PlayAuth the token path does not exist and tokens are ignored.
	src := &fakeSource{resp: mediaResponse(packager.KindPart, []byte("media"))}
	h := (&Server{Source: src}).Handler()
	tok := testPlayAuth().Token("shop", testNow.Add(time.Hour))
	if w := do(t, h, http.MethodGet, "/live/shop/t/"+tok+"/part1.m4s", nil); w.Code != http.StatusNotFound {
		t.Errorf("token path without PlayAuth: %d", w.Code)
	}
	if w := do(t, h, http.MethodGet, "/live/shop/part1.m4s?token=x", nil); w.Code != http.StatusOK {
		t.Errorf("part without PlayAuth: %d", w.Code)
	}
}

func TestPrefixURIs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"#EXTM3U\nstream.m3u8\n", "#EXTM3U\nP/stream.m3u8\n"},
		{"#EXTM3U\r\nstream.m3u8\r\n", "#EXTM3U\r\nP/stream.m3u8\r\n"},
		{"#EXTM3U\nstream.m3u8", "#EXTM3U\nP/stream.m3u8"},
		{"/abs/stream.m3u8\nhttps://h/x.m3u8\n", "/abs/stream.m3u8\nhttps://h/x.m3u8\n"},
		{"a/b:c.m3u8\n", "P/a/b:c.m3u8\n"},
		{`#X:URI="a.m3u8",Y="1",URI="https://h/b"` + "\n", `#X:URI="P/a.m3u8",Y="1",URI="https://h/b"` + "\n"},
		{"#EXT-X-STREAM-INF:BANDWIDTH=1\n\nstream.m3u8\n", "#EXT-X-STREAM-INF:BANDWIDTH=1\n\nP/stream.m3u8\n"},
	} {
		if got := string(prefixURIs([]byte(c.in), "P/")); got != c.want {
			t.Errorf("prefixURIs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

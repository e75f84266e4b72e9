package origin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// FuzzPlayToken checks that Verify never panics and accepts only the
// token it issued for that name, unexpired.
func FuzzPlayToken(f *testing.F) {
	a := testPlayAuth()
	good := a.Token("shop", testNow.Add(time.Hour))
	for _, s := range []string{
		good, "", ".", "1.", ".x", "0." + good, good + ".", "99999999999999999999.x",
		a.Token("shop", testNow), strings.Repeat("9", 200),
	} {
		f.Add("shop", s)
	}
	f.Fuzz(func(t *testing.T, name, token string) {
		exp, err := a.Verify(name, token, testNow)
		if err != nil {
			return
		}
		if !exp.After(testNow) {
			t.Fatalf("expired token %q accepted", token)
		}
		if a.Token(name, exp) != token {
			t.Fatalf("token %q for %q accepted, but %q is the one issued", token, name, a.Token(name, exp))
		}
	})
}

// FuzzPlayAuthRequest sends arbitrary stream URLs through the handler with
// PlayAuth on: no panic, and the source is reached only with a valid token
// for the stream it is asked about.
func FuzzPlayAuthRequest(f *testing.F) {
	a := testPlayAuth()
	good := a.Token("shop", testNow.Add(time.Hour))
	for _, s := range []string{
		"/live/shop/index.m3u8?token=" + good,
		"/live/shop/t/" + good + "/stream.m3u8?_HLS_msn=1&_HLS_part=0",
		"/live/shop/t/" + good + "/part3.m4s",
		"/live/shop/t/" + good + "/../../x/index.m3u8",
		"/live/shop/index.m3u8?token=" + good + "&token=x",
		"/live/shop/t/t/t/index.m3u8",
		"/live//t//index.m3u8",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		var reached *packager.Request
		src := sourceFunc(func(_ context.Context, req packager.Request) (*packager.Response, error) {
			reached = &req
			return mediaResponse(packager.KindPart, []byte("m")), nil
		})
		h := (&Server{Source: src, PlayAuth: a}).Handler()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL, r.RequestURI = u, target
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if reached == nil {
			return
		}
		// What reached the source was authorized by a token for that stream.
		tok := queryValue(u.RawQuery, playTokenQuery)
		if segs := strings.Split(u.EscapedPath(), "/"); len(segs) == 6 && segs[3] == playTokenPrefix {
			tok = segs[4]
		}
		if _, err := a.Verify(reached.Stream, tok, testNow); err != nil {
			t.Fatalf("%q reached the source for stream %q: %v", target, reached.Stream, err)
		}
	})
}

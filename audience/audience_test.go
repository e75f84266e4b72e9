package audience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/origin"
)

// fakeStreams is a set of live streams.
type fakeStreams map[string]bool

func (f fakeStreams) HasStream(name string) bool { return f[name] }

// fakePolls stands in for the cue service: the open polls and their
// option counts.
type fakePolls struct {
	mu   sync.Mutex
	open map[string]int // "stream/poll" -> options
}

func (f *fakePolls) OpenPoll(stream, id string) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.open[stream+"/"+id]
	return n, ok
}

func (f *fakePolls) close(stream, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, stream+"/"+id)
}

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	a     *Audience
	polls *fakePolls
	clock *clock
	mux   *http.ServeMux
}

func newFixture(t *testing.T, edit func(a *Audience)) *fixture {
	t.Helper()
	f := &fixture{
		polls: &fakePolls{open: map[string]int{"shop/p1": 3}},
		clock: &clock{t: time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC)},
		mux:   http.NewServeMux(),
	}
	f.a = &Audience{Streams: fakeStreams{"shop": true, "other": true}, Polls: f.polls}
	f.a.now = f.clock.now
	if edit != nil {
		edit(f.a)
	}
	f.a.Register(f.mux.Handle)
	f.mux.Handle("GET /live/{name}/pulse.json", f.a.Pulse())
	return f
}

// post sends body from addr (host) and returns the answer.
func (f *fixture) post(stream, query, addr, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/streams/"+stream+"/signals"+query, strings.NewReader(body))
	r.RemoteAddr = addr + ":40000"
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

func (f *fixture) get(path string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

func (f *fixture) pulse(t *testing.T, stream string) PulseJSON {
	t.Helper()
	w := f.get("/live/"+stream+"/pulse.json", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("pulse: %d %s", w.Code, w.Body)
	}
	var p PulseJSON
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) studio(t *testing.T, stream string) StudioJSON {
	t.Helper()
	w := f.get("/api/v1/streams/"+stream+"/audience", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("studio: %d %s", w.Code, w.Body)
	}
	var s StudioJSON
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func viewerID(i int) string { return fmt.Sprintf("viewer-%016d", i) }

func sig(viewer, rest string) string {
	return `{"viewer":"` + viewer + `",` + rest + `}`
}

func TestSignalKinds(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, f *fixture)
	}{
		{"heartbeat counts a viewer", sig(viewerID(1), `"kind":"heartbeat"`), func(t *testing.T, f *fixture) {
			if p := f.pulse(t, "shop"); p.Viewers != 1 {
				t.Fatalf("viewers %d, want 1", p.Viewers)
			}
		}},
		{"reaction counts a heart", sig(viewerID(1), `"kind":"reaction"`), func(t *testing.T, f *fixture) {
			if p := f.pulse(t, "shop"); p.Reactions != 1 || p.ReactionsTotal != 1 || p.Viewers != 0 {
				t.Fatalf("pulse %+v, want one reaction and no viewer", p)
			}
			if s := f.studio(t, "shop"); s.ReactionsPerMinute != 1 {
				t.Fatalf("reactions per minute %d, want 1", s.ReactionsPerMinute)
			}
		}},
		{"impression counts in the funnel", sig(viewerID(1), `"kind":"impression","cue":"c1"`), func(t *testing.T, f *fixture) {
			s := f.studio(t, "shop")
			if len(s.Products) != 1 || s.Products[0].Cue != "c1" || s.Products[0].Impressions != 1 || s.Products[0].Clicks != 0 {
				t.Fatalf("products %+v", s.Products)
			}
		}},
		{"click counts in the funnel", sig(viewerID(1), `"signals":[{"kind":"impression","cue":"c1"},{"kind":"impression","cue":"c1"},{"kind":"click","cue":"c1","sku":"SKU-1"}]`), func(t *testing.T, f *fixture) {
			s := f.studio(t, "shop")
			if len(s.Products) != 1 || s.Products[0].SKU != "SKU-1" || s.Products[0].Impressions != 2 || s.Products[0].Clicks != 1 || s.Products[0].CTR != 0.5 {
				t.Fatalf("products %+v", s.Products)
			}
		}},
		{"vote counts in the tally", sig(viewerID(1), `"kind":"vote","poll":"p1","option":2`), func(t *testing.T, f *fixture) {
			if got := f.a.Tally("shop", "p1"); fmt.Sprint(got) != "[0 0 1]" {
				t.Fatalf("tally %v", got)
			}
			p := f.pulse(t, "shop")
			if len(p.Polls) != 1 || p.Polls[0].ID != "p1" || p.Polls[0].Votes != 1 || !p.Polls[0].Open {
				t.Fatalf("pulse polls %+v", p.Polls)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			w := f.post("shop", "", "192.0.2.1", tt.body)
			if w.Code != http.StatusAccepted {
				t.Fatalf("POST: %d %s", w.Code, w.Body)
			}
			tt.check(t, f)
			if f.a.Stats().Accepted[strings.Fields(tt.name)[0]] == 0 {
				t.Fatalf("no accepted %s in the stats: %+v", tt.name, f.a.Stats())
			}
		})
	}
}

func TestSignalRefusals(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	play := &origin.PlayAuth{Secret: secret}
	good := sig(viewerID(1), `"kind":"heartbeat"`)
	tests := []struct {
		name   string
		auth   bool
		stream string
		query  string
		body   string
		status int
		field  string
		reason string
	}{
		{"bad field", false, "shop", "", sig(viewerID(1), `"kind":"vote","poll":"p1"`), 400, "option", "bad_request"},
		{"bad viewer", false, "shop", "", sig("x", `"kind":"heartbeat"`), 400, "viewer", "bad_request"},
		{"unknown stream", false, "nope", "", good, 404, "", "unknown_stream"},
		{"1 MB body", false, "shop", "", sig(viewerID(1), `"kind":"heartbeat","pad":"`+strings.Repeat("x", 1<<20)+`"`), 413, "", "too_large"},
		{"poll not open", false, "shop", "", sig(viewerID(1), `"kind":"vote","poll":"p2","option":0`), 409, "poll", "poll_closed"},
		{"option out of range", false, "shop", "", sig(viewerID(1), `"kind":"vote","poll":"p1","option":3`), 409, "poll", "poll_closed"},
		{"no play token", true, "shop", "", good, 403, "", "forbidden"},
		{"forged play token", true, "shop", "?token=4102444800.AAAA", good, 403, "", "forbidden"},
		{"play token of another stream", true, "shop", "?token=" + play.Token("other", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)), good, 403, "", "forbidden"},
		{"expired play token", true, "shop", "?token=" + play.Token("shop", time.Date(2026, 6, 1, 17, 0, 0, 0, time.UTC)), good, 403, "", "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(a *Audience) {
				if tt.auth {
					a.PlayAuth = &origin.PlayAuth{Secret: secret}
				}
			})
			w := f.post(tt.stream, tt.query, "192.0.2.1", tt.body)
			if w.Code != tt.status {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.status)
			}
			var e apiError
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("error body %q: %v", w.Body, err)
			}
			if e.Field != tt.field {
				t.Fatalf("field %q, want %q", e.Field, tt.field)
			}
			found := false
			for _, r := range f.a.Stats().Refused {
				found = found || r.Reason == tt.reason
			}
			if !found {
				t.Fatalf("no %s refusal in %+v", tt.reason, f.a.Stats().Refused)
			}
			if st := f.a.Stats(); st.Viewers["shop"] != 0 || st.Accepted["heartbeat"] != 0 {
				t.Fatalf("a refused signal counted: %+v", st)
			}
		})
	}
}

func TestPlayTokenAccepted(t *testing.T) {
	play := &origin.PlayAuth{Secret: []byte("0123456789abcdef0123")}
	f := newFixture(t, func(a *Audience) { a.PlayAuth = play })
	tok := play.Token("shop", f.clock.now().Add(time.Hour))
	if w := f.post("shop", "?token="+tok, "192.0.2.1", sig(viewerID(1), `"kind":"heartbeat"`)); w.Code != http.StatusAccepted {
		t.Fatalf("with a token: %d %s", w.Code, w.Body)
	}
	if w := f.get("/live/shop/pulse.json", nil); w.Code != http.StatusForbidden {
		t.Fatalf("pulse without a token: %d", w.Code)
	}
	if w := f.get("/live/shop/pulse.json?token="+tok, nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"viewers":1`) {
		t.Fatalf("pulse with a token: %d %s", w.Code, w.Body)
	}
}

func TestOneVotePerViewer(t *testing.T) {
	f := newFixture(t, nil)
	for i, tt := range []struct {
		viewer string
		option int
		status int
	}{
		{viewerID(1), 0, 202},
		{viewerID(1), 1, 409}, // a second vote, for another option
		{viewerID(1), 0, 409},
		{viewerID(2), 1, 202},
	} {
		w := f.post("shop", "", "192.0.2.1", sig(tt.viewer, fmt.Sprintf(`"kind":"vote","poll":"p1","option":%d`, tt.option)))
		if w.Code != tt.status {
			t.Fatalf("vote %d: %d %s, want %d", i, w.Code, w.Body, tt.status)
		}
	}
	// In a batch, the second vote is reported, not counted.
	w := f.post("shop", "", "192.0.2.1", sig(viewerID(3), `"signals":[{"kind":"vote","poll":"p1","option":2},{"kind":"vote","poll":"p1","option":2}]`))
	if w.Code != 202 || !strings.Contains(w.Body.String(), `"refused":[{"index":1,"reason":"duplicate_vote"}]`) {
		t.Fatalf("batch: %d %s", w.Code, w.Body)
	}
	if got := fmt.Sprint(f.a.Tally("shop", "p1")); got != "[1 1 1]" {
		t.Fatalf("tally %s, want [1 1 1]", got)
	}
	// Once the poll closes, votes are refused and the tally stays.
	f.polls.close("shop", "p1")
	if w := f.post("shop", "", "192.0.2.1", sig(viewerID(4), `"kind":"vote","poll":"p1","option":0`)); w.Code != 409 {
		t.Fatalf("vote after close: %d", w.Code)
	}
	if got := fmt.Sprint(f.a.Tally("shop", "p1")); got != "[1 1 1]" {
		t.Fatalf("tally after close %s", got)
	}
	if p := f.pulse(t, "shop"); len(p.Polls) != 0 {
		t.Fatalf("closed poll in the pulse: %+v", p.Polls)
	}
	if s := f.studio(t, "shop"); len(s.Polls) != 1 || s.Polls[0].Open || s.Polls[0].Votes != 3 {
		t.Fatalf("studio polls %+v", s.Polls)
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("per viewer", func(t *testing.T) {
		f := newFixture(t, func(a *Audience) { a.ViewerRate = 5 })
		burst := int(f.a.viewerBurst())
		for i := range burst {
			if w := f.post("shop", "", "192.0.2.1", sig(viewerID(1), `"kind":"reaction"`)); w.Code != 202 {
				t.Fatalf("signal %d of the burst: %d", i, w.Code)
			}
		}
		w := f.post("shop", "", "192.0.2.1", sig(viewerID(1), `"kind":"reaction"`))
		if w.Code != 429 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("past the burst: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
		}
		// Another viewer on the same address goes on.
		if w := f.post("shop", "", "192.0.2.1", sig(viewerID(2), `"kind":"reaction"`)); w.Code != 202 {
			t.Fatalf("another viewer: %d", w.Code)
		}
		// The bucket refills at the rate.
		f.clock.add(time.Second)
		for i := range 5 {
			if w := f.post("shop", "", "192.0.2.1", sig(viewerID(1), `"kind":"reaction"`)); w.Code != 202 {
				t.Fatalf("after 1s, signal %d: %d", i, w.Code)
			}
		}
		if w := f.post("shop", "", "192.0.2.1", sig(viewerID(1), `"kind":"reaction"`)); w.Code != 429 {
			t.Fatalf("sixth after 1s: %d", w.Code)
		}
		if p := f.pulse(t, "shop"); p.ReactionsTotal != int64(burst+1+5) {
			t.Fatalf("reactions %d, want %d: refused ones counted", p.ReactionsTotal, burst+6)
		}
	})
	t.Run("per address", func(t *testing.T) {
		f := newFixture(t, func(a *Audience) { a.AddressRate = 10 })
		// New viewer ids each time: only the address limits them.
		for i := range 20 {
			if w := f.post("shop", "", "192.0.2.1", sig(viewerID(i), `"kind":"heartbeat"`)); w.Code != 202 {
				t.Fatalf("request %d: %d", i, w.Code)
			}
		}
		w := f.post("shop", "", "192.0.2.1", sig(viewerID(99), `"kind":"heartbeat"`))
		if w.Code != 429 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("past the burst: %d", w.Code)
		}
		if w := f.post("shop", "", "192.0.2.2", sig(viewerID(99), `"kind":"heartbeat"`)); w.Code != 202 {
			t.Fatalf("another address: %d", w.Code)
		}
		if p := f.pulse(t, "shop"); p.Viewers != 21 {
			t.Fatalf("viewers %d, want 21", p.Viewers)
		}
	})
}

func TestBoundedMemory(t *testing.T) {
	f := newFixture(t, func(a *Audience) {
		a.MaxViewers, a.MaxAddresses, a.MaxStreams, a.MaxProducts, a.MaxPolls = 100, 50, 1, 8, 2
		a.AddressRate = 1e6
	})
	// 1,000 viewer ids from 1,000 addresses: at most 100 are tracked, the
	// rest are refused with 503, never stored.
	var ok, refused int
	for i := range 1000 {
		w := f.post("shop", "", fmt.Sprintf("10.0.%d.%d", i/250, i%250), sig(viewerID(i), `"signals":[{"kind":"heartbeat"},{"kind":"impression","cue":"c`+fmt.Sprint(i)+`"}]`))
		switch w.Code {
		case 202:
			ok++
		case 503:
			refused++
		default:
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
	}
	st := f.a.Stats()
	if ok > 100 || st.TrackedViewers > 100 || st.TrackedAddresses > 50 {
		t.Fatalf("accepted %d, tracked %d viewers and %d addresses: over the caps", ok, st.TrackedViewers, st.TrackedAddresses)
	}
	if refused == 0 {
		t.Fatal("nothing refused")
	}
	if s := f.studio(t, "shop"); len(s.Products) > 8 {
		t.Fatalf("%d products tracked, cap 8", len(s.Products))
	}
	// A second stream does not fit in the table of streams.
	if w := f.post("other", "", "192.0.2.9", sig(viewerID(1), `"kind":"heartbeat"`)); w.Code != 503 {
		t.Fatalf("second stream: %d", w.Code)
	}
	// Once idle, viewers and addresses are forgotten and newcomers fit.
	f.clock.add(f.a.viewerWindow() + time.Second)
	f.a.sweep(f.clock.now().UnixNano(), true)
	if st := f.a.Stats(); st.TrackedViewers != 0 || st.TrackedAddresses != 0 {
		t.Fatalf("after the window: %d viewers, %d addresses tracked", st.TrackedViewers, st.TrackedAddresses)
	}
	if p := f.pulse(t, "shop"); p.Viewers != 0 {
		t.Fatalf("viewers %d after the window", p.Viewers)
	}
	if w := f.post("shop", "", "192.0.2.4", sig(viewerID(5000), `"kind":"heartbeat"`)); w.Code != 202 {
		t.Fatalf("newcomer after the sweep: %d", w.Code)
	}
	// Polls beyond MaxPolls forget the oldest.
	for _, p := range []string{"p1", "p2", "p3"} {
		f.polls.mu.Lock()
		f.polls.open["shop/"+p] = 2
		f.polls.mu.Unlock()
		f.post("shop", "", "192.0.2.3", sig(viewerID(5), `"kind":"vote","poll":"`+p+`","option":0`))
	}
	if f.a.Tally("shop", "p1") != nil || f.a.Tally("shop", "p3") == nil {
		t.Fatal("the oldest poll was not the one forgotten")
	}
}

func TestViewersWindow(t *testing.T) {
	f := newFixture(t, nil) // heartbeat every 10 s: a viewer counts for 20 s
	for i := range 3 {
		f.post("shop", "", "192.0.2.1", sig(viewerID(i), `"kind":"heartbeat"`))
	}
	f.clock.add(15 * time.Second)
	// Viewer 0 beats again; the others are late, but within the window.
	f.post("shop", "", "192.0.2.1", sig(viewerID(0), `"kind":"heartbeat"`))
	if p := f.pulse(t, "shop"); p.Viewers != 3 {
		t.Fatalf("viewers %d at 15 s, want 3", p.Viewers)
	}
	f.clock.add(10 * time.Second)
	if p := f.pulse(t, "shop"); p.Viewers != 1 {
		t.Fatalf("viewers %d at 25 s, want 1 (the others stopped)", p.Viewers)
	}
	// Reactions leave the pulse after its window, the total stays.
	f.post("shop", "", "192.0.2.1", sig(viewerID(0), `"kind":"reaction"`))
	f.clock.add(f.a.ReactionWindow)
	if p := f.pulse(t, "shop"); p.Reactions != 0 || p.ReactionsTotal != 1 {
		t.Fatalf("after the reaction window: %+v", p)
	}
}

func TestPulseCaching(t *testing.T) {
	f := newFixture(t, func(a *Audience) { a.PulseMaxAge = 2 * time.Second })
	f.post("shop", "", "192.0.2.1", sig(viewerID(1), `"kind":"heartbeat"`))
	w := f.get("/live/shop/pulse.json", nil)
	if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=2, s-maxage=2" {
		t.Fatalf("Cache-Control %q", cc)
	}
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("headers %v", w.Header())
	}
	if w := f.get("/live/shop/pulse.json", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
		t.Fatalf("revalidation: %d", w.Code)
	}
	f.post("shop", "", "192.0.2.1", sig(viewerID(2), `"kind":"heartbeat"`))
	// Within a quarter of max-age the pulse is the one already built.
	if w := f.get("/live/shop/pulse.json", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
		t.Fatalf("within the rebuild period: %d", w.Code)
	}
	f.clock.add(time.Second)
	w = f.get("/live/shop/pulse.json", map[string]string{"If-None-Match": etag})
	if w.Code != http.StatusOK || w.Header().Get("ETag") == etag || !bytes.Contains(w.Body.Bytes(), []byte(`"viewers":2`)) {
		t.Fatalf("after a change: %d %s", w.Code, w.Body)
	}
	if w := f.get("/live/nope/pulse.json", nil); w.Code != http.StatusNotFound {
		t.Fatalf("unknown stream: %d", w.Code)
	}
}

func TestStudioAuth(t *testing.T) {
	f := newFixture(t, func(a *Audience) { a.AdminToken = "s3cret-token" })
	if w := f.get("/api/v1/streams/shop/audience", nil); w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("without the token: %d", w.Code)
	}
	if w := f.get("/api/v1/streams/shop/audience", map[string]string{"Authorization": "Bearer wrong"}); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", w.Code)
	}
	if w := f.get("/api/v1/streams/shop/audience", map[string]string{"Authorization": "Bearer s3cret-token"}); w.Code != http.StatusOK {
		t.Fatalf("with the token: %d", w.Code)
	}
	if w := f.get("/api/v1/streams/nope/audience", map[string]string{"Authorization": "Bearer s3cret-token"}); w.Code != http.StatusNotFound {
		t.Fatalf("unknown stream: %d", w.Code)
	}
	// Token-less, only direct local requests.
	g := newFixture(t, nil)
	r := httptest.NewRequest(http.MethodGet, "/api/v1/streams/shop/audience", nil)
	r.RemoteAddr = "192.0.2.1:5000"
	w := httptest.NewRecorder()
	g.mux.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("remote without a token: %d", w.Code)
	}
	// Signals never need the admin token.
	if w := f.post("shop", "", "192.0.2.1", sig(viewerID(1), `"kind":"heartbeat"`)); w.Code != 202 {
		t.Fatalf("signal with an admin token configured: %d", w.Code)
	}
}

// TestConcurrentSignals runs signals, pulses, tallies and sweeps at once,
// for the race detector.
func TestConcurrentSignals(t *testing.T) {
	f := newFixture(t, func(a *Audience) { a.AddressRate = 1e6; a.MaxViewers = 50 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				f.post("shop", "", "192.0.2.1", sig(viewerID(g*1000+i), `"signals":[{"kind":"heartbeat"},{"kind":"reaction"},{"kind":"vote","poll":"p1","option":1}]`))
				if i%20 == 0 {
					f.pulse(t, "shop")
					f.a.Tally("shop", "p1")
					f.a.sweep(f.clock.now().UnixNano(), true)
				}
			}
		})
	}
	wg.Wait()
	if st := f.a.Stats(); st.TrackedViewers > 50 {
		t.Fatalf("tracked %d", st.TrackedViewers)
	}
}

func TestSignalsCORS(t *testing.T) {
	f := newFixture(t, func(a *Audience) { a.CORSOrigin = "https://shop.example" })
	r := httptest.NewRequest(http.MethodOptions, "/api/v1/streams/shop/signals", nil)
	r.Header.Set("Origin", "https://shop.example")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "content-type")
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
	if w := f.post("shop", "", "192.0.2.1", sig(viewerID(1), `"kind":"heartbeat"`)); w.Header().Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("POST without CORS: %v", w.Header())
	}
}

package audience

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/origin"
)

// TestSignals is the signals API against a live stream: each refusal the
// issue lists, with its status and field, and that refused signals count
// nowhere but in the refusal metrics.
func TestSignals(t *testing.T) {
	const name = "shop"
	srv := startLive(t, name, 120, nil)

	t.Run("accepted", func(t *testing.T) {
		a := signal(t, srv, name, "", body(viewer(1), `"signals":[{"kind":"heartbeat"},{"kind":"reaction"},{"kind":"impression","cue":"c1"},{"kind":"click","cue":"c1","sku":"SKU-1"}]`))
		if a.status != http.StatusAccepted || !strings.Contains(a.body, `"accepted":4`) {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if a.header.Get("Set-Cookie") != "" {
			t.Fatalf("a cookie was set: %q", a.header.Get("Set-Cookie"))
		}
		v := studio(t, srv, name)
		if v.Viewers != 1 || v.ReactionsPerMinute != 1 || len(v.Products) != 1 || v.Products[0].Clicks != 1 || v.Products[0].Impressions != 1 {
			t.Fatalf("studio view %+v", v)
		}
	})

	t.Run("bad field", func(t *testing.T) {
		a := signal(t, srv, name, "", body(viewer(1), `"kind":"vote","poll":"p1","option":"two"`))
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, `"field":"option"`) {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})

	t.Run("unknown stream", func(t *testing.T) {
		if a := signal(t, srv, "nobody", "", body(viewer(1), `"kind":"heartbeat"`)); a.status != http.StatusNotFound {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if a := do(t, http.MethodGet, srv.HTTP+"/live/nobody/pulse.json", "", nil); a.status != http.StatusNotFound {
			t.Fatalf("pulse: %d %s", a.status, a.body)
		}
	})

	t.Run("1 MB body", func(t *testing.T) {
		big := body(viewer(1), `"kind":"heartbeat","pad":"`+strings.Repeat("x", 1<<20)+`"`)
		a := signal(t, srv, name, "", big)
		if a.status != http.StatusRequestEntityTooLarge || !strings.Contains(a.body, `"limit":4096`) {
			t.Fatalf("%d %.200s", a.status, a.body)
		}
	})

	t.Run("flood from one viewer", func(t *testing.T) {
		var ok, limited int
		for range 40 {
			a := signal(t, srv, name, "", body(viewer(2), `"kind":"reaction"`))
			switch a.status {
			case http.StatusAccepted:
				ok++
			case http.StatusTooManyRequests:
				limited++
				if a.header.Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
			default:
				t.Fatalf("%d %s", a.status, a.body)
			}
		}
		// 5 a second, a bucket of 10: a loaded machine takes a few
		// seconds for 40 requests at most.
		if limited == 0 || ok > 30 {
			t.Fatalf("%d accepted, %d refused: the flood was not limited", ok, limited)
		}
		// Another viewer on the same address goes on.
		if a := signal(t, srv, name, "", body(viewer(3), `"kind":"reaction"`)); a.status != http.StatusAccepted {
			t.Fatalf("another viewer: %d %s", a.status, a.body)
		}
		m := do(t, http.MethodGet, srv.HTTP+"/metrics", "", nil).body
		for _, want := range []string{
			`shopcast_signals_refused_total{kind="reaction",reason="rate_viewer"}`,
			`shopcast_signals_refused_total{kind="unknown",reason="too_large"} 1`,
			`shopcast_signals_accepted_total{kind="click"} 1`,
			`shopcast_audience_viewers{stream="shop"} 1`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if strings.Contains(m, "c1") || strings.Contains(m, "SKU-1") {
			t.Error("a product id is in the metrics")
		}
	})

	t.Run("one vote per viewer", func(t *testing.T) {
		if !openPoll(t, srv, name, "poll-1") {
			t.Skip("the cue API does not take poll cues yet")
		}
		vote := body(viewer(4), `"kind":"vote","poll":"poll-1","option":1`)
		var first answer
		e2etest.WaitUntil(t, 10*time.Second, "the poll to open", func() bool {
			first = signal(t, srv, name, "", vote)
			return first.status == http.StatusAccepted
		})
		again := signal(t, srv, name, "", body(viewer(4), `"kind":"vote","poll":"poll-1","option":0`))
		if again.status != http.StatusConflict || !strings.Contains(again.body, `"field":"poll"`) {
			t.Fatalf("second vote: %d %s", again.status, again.body)
		}
		v := studio(t, srv, name)
		if len(v.Polls) != 1 || v.Polls[0].Votes != 1 || v.Polls[0].Counts[1] != 1 {
			t.Fatalf("polls %+v: the second vote counted", v.Polls)
		}
	})
}

// TestSignalsPlayToken: with play_secret set, a signal (and the pulse)
// needs a valid play token of its stream.
func TestSignalsPlayToken(t *testing.T) {
	const name, secret = "shop", "a-play-secret-of-32-bytes-000000"
	srv := startLive(t, name, 60, func(c *server.Config) { c.PlaySecret = secret })
	play := &origin.PlayAuth{Secret: []byte(secret)}
	exp := time.Now().Add(time.Hour)
	hb := body(viewer(1), `"kind":"heartbeat"`)
	for _, tt := range []struct {
		what, query string
		status      int
	}{
		{"no token", "", http.StatusForbidden},
		{"forged token", "?token=" + play.Token(name, exp)[:12] + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusForbidden},
		{"another stream's token", "?token=" + play.Token("other", exp), http.StatusForbidden},
		{"expired token", "?token=" + play.Token(name, time.Now().Add(-time.Minute)), http.StatusForbidden},
		{"valid token", "?token=" + play.Token(name, exp), http.StatusAccepted},
	} {
		if a := signal(t, srv, name, tt.query, hb); a.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.what, a.status, a.body, tt.status)
		}
		if a := do(t, http.MethodGet, srv.HTTP+"/live/"+name+"/pulse.json"+tt.query, "", nil); (a.status == http.StatusOK) != (tt.status == http.StatusAccepted) {
			t.Errorf("pulse, %s: %d", tt.what, a.status)
		}
	}
	if v := studio(t, srv, name); v.Viewers != 1 {
		t.Fatalf("viewers %d, want 1: a refused heartbeat counted", v.Viewers)
	}

	// The watch page passes the token it was opened with: it plays, and
	// its heartbeats count; opened without one, it does neither.
	alloc := e2etest.Chromium(t)
	page, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(page, chromedp.Navigate(srv.HTTP+"/watch/"+name+"?token="+play.Token(name, exp))); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	e2etest.WaitUntil(t, 20*time.Second, "the page's heartbeat to count", func() bool { return studio(t, srv, name).Viewers == 2 })
	e2etest.PollJS(t, page, 20*time.Second, "the video to play with the page's token",
		`document.querySelector('video').currentTime`, func(v float64) bool { return v > 0.5 })
	e2etest.PollJS(t, page, 10*time.Second, "the page to read the pulse",
		`(window.shopcastAudience.pulse || {}).viewers`, func(v float64) bool { return v == 2 })
	bare, cancelBare := chromedp.NewContext(page)
	defer cancelBare()
	if err := chromedp.Do(bare, chromedp.Navigate(srv.HTTP+"/watch/"+name)); err != nil {
		t.Fatal(err)
	}
	e2etest.PollJS(t, bare, 10*time.Second, "the page without a token to be refused",
		`window.shopcastAudience.refused.map((r) => r.status)`, func(v []float64) bool { return len(v) > 0 && v[0] == 403 })
	if v := studio(t, srv, name); v.Viewers != 2 {
		t.Fatalf("viewers %d, want 2: the page without a token counted", v.Viewers)
	}
}

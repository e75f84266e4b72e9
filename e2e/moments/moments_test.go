// Package moments checks the live moments end to end (issue 19): a real
// ffmpeg publishes over RTMP like OBS, two watch pages play the stream in
// Debian's chromium with hls.js, one of them further behind live, and the
// studio starts a poll. Each moment must reach both viewers at the same
// picture, measured on each page's own video clock.
package moments

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// tolerance is how far from a moment's media time a page may show it
// (issue 19: "within 100 ms").
const tolerance = 0.100

// laterDelay is the live delay of the second page (the watch page's
// ?delay=, hls.js liveSyncDuration), seconds.
const laterDelay = 4

// pageState is what the test reads of a watch page.
type pageState struct {
	CT      float64    `json:"ct"`
	Offset  *float64   `json:"off"` // media time minus video time (hls.js initPTS)
	Latency *float64   `json:"lat"`
	State   string     `json:"state"`
	Paused  bool       `json:"paused"`
	Moments []moment   `json:"moments"`
	Cues    []moment   `json:"cues"` // the product cards shown (watch.js)
	Cards   []card     `json:"cards"`
	Probe   *probe     `json:"probe"`
	Swap    *swapWatch `json:"swap"`
}

type moment struct {
	ID      string   `json:"id"`
	Type    string   `json:"type"`
	Start   *float64 `json:"start"`
	End     *float64 `json:"end"`
	ShownAt float64  `json:"shownAt"`
	ZeroAt  *float64 `json:"zeroAt"`
	Counts  []int64  `json:"counts"`
}

type card struct {
	ID        string `json:"id"`
	SKU       string `json:"sku"`
	Class     string `json:"cls"`
	Counts    string `json:"counts"`
	Countdown string `json:"countdown"`
}

type probe struct {
	Votes       []map[string]any `json:"votes"`
	Clicks      []map[string]any `json:"clicks"`
	Impressions []map[string]any `json:"impressions"`
}

type swapWatch struct {
	SKU    string           `json:"sku"`
	Counts []int            `json:"counts"`
	Bad    []map[string]any `json:"bad"`
}

const readPage = `(() => {
  const v = document.getElementById('video');
  const s = window.shopcast || {};
  return {
    ct: v.currentTime, off: s.mediaOffset, lat: s.latency, state: s.state, paused: v.paused,
    moments: s.moments || [], cues: s.cues || [], probe: window.__probe || null, swap: window.__swap || null,
    cards: [...document.querySelectorAll('#carousel > li')].map((li) => ({
      id: li.dataset.cueId, sku: li.dataset.sku || '', cls: li.className, counts: li.dataset.counts || '',
      countdown: (li.querySelector('.countdown') || {}).textContent || '' })),
  };
})()`

// installProbe records the page's signals (the DOM events the audience
// beacons send on) and keeps Buy from opening the shop.
const installProbe = `(() => {
  const p = window.__probe = { votes: [], clicks: [], impressions: [] };
  document.addEventListener('shopcast:vote', (e) => p.votes.push(e.detail));
  document.addEventListener('shopcast:click', (e) => p.clicks.push(e.detail));
  document.addEventListener('shopcast:impression', (e) => p.impressions.push(e.detail));
  document.addEventListener('click', (e) => { if (e.target.closest('a.buy')) e.preventDefault(); }, true);
  return true;
})()`

// watchSwaps follows the cards of one product from now on: after every
// change there must be exactly one, and no change may take one away
// without putting one in (a frame with none) or add one beside it.
func watchSwaps(sku string) string {
	return fmt.Sprintf(`(() => {
  const sku = %q;
  const c = document.getElementById('carousel');
  const v = document.getElementById('video');
  const w = window.__swap = { sku, counts: [], bad: [] };
  const mine = (nodes) => [...nodes].filter((n) => n.dataset && n.dataset.sku === sku).length;
  new MutationObserver((records) => {
    for (const r of records) {
      const removed = mine(r.removedNodes), added = mine(r.addedNodes);
      if (removed !== added) w.bad.push({ removed, added, ct: v.currentTime });
    }
    const n = c.querySelectorAll('[data-sku="' + CSS.escape(sku) + '"]').length;
    w.counts.push(n);
    if (n !== 1) w.bad.push({ count: n, ct: v.currentTime });
  }).observe(c, { childList: true });
  return c.querySelectorAll('[data-sku="' + CSS.escape(sku) + '"]').length;
})()`, sku)
}

func (p pageState) moment(id string) (moment, bool) {
	for _, m := range p.Moments {
		if m.ID == id {
			return m, true
		}
	}
	return moment{}, false
}

func (p pageState) card(id string) (card, bool) {
	for _, c := range p.Cards {
		if c.ID == id {
			return c, true
		}
	}
	return card{}, false
}

func TestMoments(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	for _, tool := range []string{"ffmpeg", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: this test needs Debian's ffmpeg and chromium (make deps): %v", tool, err)
		}
	}
	const name = "moments"
	srv := e2etest.Start(t, e2etest.Config(t))
	e2etest.FFmpegOBS(t, srv.RTMP+"/live/"+name, 240)
	media := srv.HTTP + "/live/" + name + "/stream.m3u8"
	e2etest.WaitUntil(t, 30*time.Second, "the stream's playlist", func() bool {
		code, _ := do(t, http.MethodGet, media, "")
		return code == http.StatusOK
	})
	api := srv.HTTP + "/api/v1/streams/" + name + "/cues"

	browser, cancel := chromedp.NewContext(e2etest.Chromium(t))
	t.Cleanup(cancel)
	// The first Run starts the browser: no timeout on its context.
	if err := chromedp.Do(browser); err != nil {
		t.Fatal(err)
	}
	a := browser
	b, cancelB := chromedp.NewContext(browser)
	t.Cleanup(cancelB)
	pages := []struct {
		name string
		ctx  context.Context
		url  string
	}{
		{"A", a, srv.HTTP + "/watch/" + name},
		{"B", b, fmt.Sprintf("%s/watch/%s?delay=%d", srv.HTTP, name, laterDelay)},
	}
	for _, p := range pages {
		if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(p.url)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(ctx context.Context) pageState { return e2etest.EvalJS[pageState](t, ctx, readPage) }
	for _, p := range pages {
		e2etest.PollJS(t, p.ctx, 45*time.Second, "page "+p.name+" playing", readPage, func(s pageState) bool {
			return s.Offset != nil && s.CT > 2 && !s.Paused && s.State == "live"
		})
		e2etest.EvalJS[bool](t, p.ctx, installProbe)
	}
	// The two viewers are seconds apart: the same moment reaches them at
	// different wall-clock times, at the same picture.
	e2etest.PollJS(t, b, 45*time.Second, "page B settled behind page A", readPage, func(s pageState) bool {
		sa := read(a)
		return s.Latency != nil && sa.Latency != nil && *s.Latency-*sa.Latency > laterDelay/2
	})
	la, lb := read(a).Latency, read(b).Latency
	t.Logf("latency: page A %.2f s, page B %.2f s", *la, *lb)

	var captures []fetched
	// capture reads the playlist and its segments until the shopcast emsg
	// boxes named are all in them (a box is in the segment once it is
	// complete), and keeps every read for the strict check.
	found := map[string]emsgCue{}
	capture := func(what string, ids ...string) {
		t.Helper()
		e2etest.WaitUntil(t, 20*time.Second, what+": emsg boxes "+strings.Join(ids, ", "), func() bool {
			f := fetchPlaylist(t, what, media)
			captures = append(captures, f)
			for _, seg := range f.segments {
				for id, e := range emsgCues(t, seg) {
					found[id] = e
				}
			}
			for _, id := range ids {
				if _, ok := found[id]; !ok {
					return false
				}
			}
			return true
		})
	}
	checkEmsg := func(id string, mediaMs, durMs int64) {
		t.Helper()
		e := found[id]
		if got := int64(e.presentationTime) * 1000 / int64(e.timescale); got != mediaMs {
			t.Errorf("emsg of %s at %d ms, the API placed it at %d ms", id, got, mediaMs)
		}
		if durMs > 0 && int64(e.duration)*1000/int64(e.timescale) != durMs {
			t.Errorf("emsg of %s lasts %d ticks, want %d ms", id, e.duration, durMs)
		}
	}
	// onTime checks that a page's video was at the media time mediaMs,
	// mapped to its own timeline, when it did something (at, video time).
	onTime := func(page, what string, at float64, s pageState, mediaMs int64) {
		t.Helper()
		want := float64(mediaMs)/1000 - *s.Offset
		off := at - want
		t.Logf("page %s: %s at video time %.3f s, the media time %d ms is %.3f s there: %+.1f ms", page, what, at, mediaMs, want, off*1000)
		if math.Abs(off) > tolerance {
			t.Errorf("page %s: %s %.0f ms from its media time, more than %.0f ms", page, what, off*1000, tolerance*1000)
		}
	}

	// 1. The seller starts a poll in the studio, with the keyboard.
	studio, closeStudio := chromedp.NewContext(browser)
	if err := chromedp.Do(studio, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(srv.HTTP+"/studio/"+name)); err != nil {
		t.Fatal(err)
	}
	e2etest.PollJS(t, studio, 20*time.Second, "the studio's catalog", `window.shopcast && window.shopcast.products ? window.shopcast.products.length : 0`, func(n int) bool { return n > 0 })
	form := func(sel string) string { return "#poll-form " + sel }
	if err := chromedp.Do(studio,
		chromedp.SendKeys(chromedp.CSS(form(`input[name="question"]`)), "Which colour next?"),
		chromedp.SendKeys(chromedp.CSS(form(`label:nth-of-type(2) input`)), "Red"),
		chromedp.SendKeys(chromedp.CSS(form(`label:nth-of-type(3) input`)), "Blue"),
		chromedp.SendKeys(chromedp.CSS(form(`label:nth-of-type(4) input`)), "Green"),
		chromedp.SetValue(chromedp.CSS(form(`input[name="seconds"]`)), "12"),
		chromedp.Focus(chromedp.CSS(form(`button[type="submit"]`))),
		chromedp.KeyEvent(kb.Enter),
	); err != nil {
		t.Fatal(err)
	}
	type posted struct {
		Cue struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"cue"`
		MediaTimeMs int64 `json:"media_time_ms"`
	}
	poll, _ := e2etest.PollJS(t, studio, 20*time.Second, "the studio's poll", `window.shopcast.lastMoment || {cue: {}}`, func(p posted) bool { return p.Cue.ID != "" })
	if errs := e2etest.EvalJS[[]string](t, studio, `window.shopcast.errors`); len(errs) > 0 || poll.Cue.Type != "poll" {
		t.Fatalf("studio: %v, posted %+v", errs, poll)
	}
	closeStudio() // its preview player would share the two cores
	pollID := poll.Cue.ID
	t.Logf("poll %s at media %d ms", pollID, poll.MediaTimeMs)

	// Viewer A votes with the mouse, viewer B with the keyboard.
	for _, p := range pages {
		e2etest.PollJS(t, p.ctx, 20*time.Second, "page "+p.name+": the poll card", readPage, func(s pageState) bool {
			c, ok := s.card(pollID)
			return ok && strings.Contains(c.Class, "poll")
		})
	}
	option := func(i int) string { return fmt.Sprintf(`[data-cue-id=%q] button[data-option="%d"]`, pollID, i) }
	if err := chromedp.Do(a, chromedp.Click(chromedp.CSS(option(0)))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b, chromedp.Focus(chromedp.CSS(option(2))), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	for i, p := range pages {
		want := []int{0, 2}[i]
		s, _ := e2etest.PollJS(t, p.ctx, 5*time.Second, "page "+p.name+"'s vote", readPage, func(s pageState) bool { return len(s.Probe.Votes) > 0 })
		v := s.Probe.Votes
		if len(v) != 1 || v[0]["stream"] != name || v[0]["poll"] != pollID || v[0]["option"] != float64(want) {
			t.Errorf("page %s: vote events %v, want one for option %d", p.name, v, want)
		}
	}

	// At its end the poll closes and its result is at the end's media time.
	resultID := pollID + "-result"
	var result cueResponse
	e2etest.WaitUntil(t, 30*time.Second, "the poll result", func() bool {
		var ok bool
		result, ok = getCue(t, api, resultID)
		return ok
	})
	if want := poll.MediaTimeMs + 12000; result.MediaTimeMs != want || result.Cue.PollResult == nil || result.Cue.PollResult.Poll != pollID {
		t.Fatalf("result %+v at %d ms, want at the poll's end %d ms", result.Cue.PollResult, result.MediaTimeMs, want)
	}
	counts := fmt.Sprint(result.Cue.PollResult.Counts)
	for _, p := range pages {
		s, _ := e2etest.PollJS(t, p.ctx, 30*time.Second, "page "+p.name+": the poll result", readPage, func(s pageState) bool {
			_, ok := s.moment(resultID)
			return ok
		})
		m, _ := s.moment(resultID)
		onTime(p.name, "the poll result showed", m.ShownAt, s, result.MediaTimeMs)
		c, ok := s.card(resultID)
		if !ok || strings.ReplaceAll(c.Counts, ",", " ") != strings.Trim(counts, "[]") {
			t.Errorf("page %s: result card %+v, the Service emitted counts %s", p.name, c, counts)
		}
		if _, still := s.card(pollID); still {
			t.Errorf("page %s: the poll card is still there beside its result", p.name)
		}
	}
	capture("poll", pollID, resultID)
	checkEmsg(pollID, poll.MediaTimeMs, 12000)
	checkEmsg(resultID, result.MediaTimeMs, result.Cue.DurationMs)

	// 2. A flash deal of 10 s: both countdowns reach zero at the deal's end
	// on their own video clocks.
	mug := map[string]any{
		"sku": "MUG-CER-350", "title": "Ceramic Mug 350 ml", "price": map[string]any{"amount": "14.5", "currency": "EUR"},
		"image_url": srv.HTTP + "/assets/products/mug.svg", "url": "https://shop.example.com/p/mug-cer-350",
	}
	deal := postCue(t, api, map[string]any{
		"v": 1, "type": "deal", "at": "now", "duration_ms": 10000,
		"deal": map[string]any{"product": mug, "price": map[string]any{"amount": "9.90", "currency": "EUR"}, "units": 5},
	})
	dealEnd := deal.MediaTimeMs + 10000
	for _, p := range pages {
		s, _ := e2etest.PollJS(t, p.ctx, 20*time.Second, "page "+p.name+": the deal's countdown", readPage, func(s pageState) bool {
			c, ok := s.card(deal.Cue.ID)
			return ok && strings.HasSuffix(c.Countdown, "left")
		})
		c, _ := s.card(deal.Cue.ID)
		t.Logf("page %s: deal card counting down, %q", p.name, c.Countdown)
	}
	for _, p := range pages {
		s, _ := e2etest.PollJS(t, p.ctx, 30*time.Second, "page "+p.name+": the deal's countdown at zero", readPage, func(s pageState) bool {
			m, ok := s.moment(deal.Cue.ID)
			return ok && m.ZeroAt != nil
		})
		m, _ := s.moment(deal.Cue.ID)
		onTime(p.name, "the deal's countdown reached zero", *m.ZeroAt, s, dealEnd)
	}
	capture("deal", deal.Cue.ID)
	checkEmsg(deal.Cue.ID, deal.MediaTimeMs, 10000)

	// 3. A product, then its update: the card swaps in place, never two
	// cards for it and never none.
	sneaker := map[string]any{
		"sku": "SNK-42-WHT", "title": "Court Classic Sneaker", "price": map[string]any{"amount": "89.90", "currency": "EUR"},
		"image_url": srv.HTTP + "/assets/products/sneaker.svg", "url": "https://shop.example.com/p/snk-42-wht",
	}
	prod := postCue(t, api, map[string]any{"v": 1, "type": "product", "at": "now", "product": sneaker})
	for _, p := range pages {
		e2etest.PollJS(t, p.ctx, 20*time.Second, "page "+p.name+": the sneaker's card", readPage, func(s pageState) bool {
			_, ok := s.card(prod.Cue.ID)
			return ok
		})
		if n := e2etest.EvalJS[int](t, p.ctx, watchSwaps("SNK-42-WHT")); n != 1 {
			t.Fatalf("page %s: %d sneaker cards", p.name, n)
		}
	}
	cheaper := map[string]any{}
	for k, v := range sneaker {
		cheaper[k] = v
	}
	cheaper["price"] = map[string]any{"amount": "79.90", "currency": "EUR"}
	cheaper["badge"] = "Only 3 left"
	upd := postCue(t, api, map[string]any{"v": 1, "type": "product", "at": "now", "replaces": prod.Cue.ID, "product": cheaper})
	old, _ := getCue(t, api, prod.Cue.ID)
	if old.State != "ended" || old.EndMediaTimeMs == nil || *old.EndMediaTimeMs != upd.MediaTimeMs {
		t.Errorf("replaced cue: %s, ends at %v; the update starts at %d ms", old.State, old.EndMediaTimeMs, upd.MediaTimeMs)
	}
	for _, p := range pages {
		s, _ := e2etest.PollJS(t, p.ctx, 20*time.Second, "page "+p.name+": the updated card", readPage, func(s pageState) bool {
			_, ok := s.card(upd.Cue.ID)
			return ok
		})
		if _, ok := s.card(prod.Cue.ID); ok {
			t.Errorf("page %s: the replaced card is still shown", p.name)
		}
		if len(s.Swap.Bad) > 0 || len(s.Swap.Counts) == 0 || slices.ContainsFunc(s.Swap.Counts, func(n int) bool { return n != 1 }) {
			t.Errorf("page %s: the sneaker's cards while swapping: counts %v, %v", p.name, s.Swap.Counts, s.Swap.Bad)
		}
		for _, c := range s.Cues {
			if c.ID == upd.Cue.ID {
				onTime(p.name, "the updated card showed", c.ShownAt, s, upd.MediaTimeMs)
			}
		}
	}
	// Buy on the updated card tells whoever listens.
	if err := chromedp.Do(a, chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-cue-id=%q] a.buy`, upd.Cue.ID)))); err != nil {
		t.Fatal(err)
	}
	s, _ := e2etest.PollJS(t, a, 5*time.Second, "page A's click", readPage, func(s pageState) bool { return len(s.Probe.Clicks) > 0 })
	if c := s.Probe.Clicks[0]; c["stream"] != name || c["cue"] != upd.Cue.ID || c["sku"] != "SNK-42-WHT" {
		t.Errorf("click event %v", c)
	}
	for _, p := range pages {
		s := read(p.ctx)
		var seen []string
		for _, im := range s.Probe.Impressions {
			seen = append(seen, fmt.Sprint(im["cue"]))
		}
		for _, id := range []string{pollID, resultID, deal.Cue.ID, prod.Cue.ID, upd.Cue.ID} {
			if !slices.Contains(seen, id) {
				t.Errorf("page %s: no impression of %s (saw %v)", p.name, id, seen)
			}
		}
	}
	capture("update", prod.Cue.ID+"/end", upd.Cue.ID)
	checkEmsg(prod.Cue.ID+"/end", upd.MediaTimeMs, 0)
	checkEmsg(upd.Cue.ID, upd.MediaTimeMs, 0)

	// Every playlist read is one a strict parser accepts, and between them
	// they carry each new type's DATERANGE.
	classes := map[string]bool{}
	for _, f := range captures {
		for _, c := range []string{"com.shopcast.poll", "com.shopcast.poll-result", "com.shopcast.deal", "X-COM-SHOPCAST-REPLACES"} {
			if strings.Contains(f.playlist, c) {
				classes[c] = true
			}
		}
	}
	for _, c := range []string{`"com.shopcast.poll"`, "com.shopcast.poll-result", "com.shopcast.deal", "X-COM-SHOPCAST-REPLACES"} {
		if !classes[strings.Trim(c, `"`)] {
			t.Errorf("no playlist read carried %s", c)
		}
	}
	bodies := make([]string, len(captures))
	for i, c := range captures {
		bodies[i] = c.playlist
	}
	for i, msg := range e2etest.StrictCheck(t, bodies) {
		if msg != "" {
			t.Errorf("hls-parser strict refused the %s playlist: %s\n%s", captures[i].what, msg, captures[i].playlist)
		}
	}
	t.Logf("%d playlists read, %d shopcast emsg boxes found by mp4ff", len(captures), len(found))
}

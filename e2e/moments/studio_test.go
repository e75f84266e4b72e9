package moments

import (
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// TestStudioMoments drives the studio's flash deal and update forms with
// the keyboard and checks the cues they post through the cue API (the poll
// form is TestMoments').
func TestStudioMoments(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	for _, tool := range []string{"ffmpeg", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: this test needs Debian's ffmpeg and chromium (make deps): %v", tool, err)
		}
	}
	const name = "studio"
	srv := e2etest.Start(t, e2etest.Config(t))
	e2etest.FFmpegOBS(t, srv.RTMP+"/live/"+name, 120)
	e2etest.WaitUntil(t, 30*time.Second, "the stream's playlist", func() bool {
		code, _ := do(t, http.MethodGet, srv.HTTP+"/live/"+name+"/stream.m3u8", "")
		return code == http.StatusOK
	})
	api := srv.HTTP + "/api/v1/streams/" + name + "/cues"

	ctx, cancel := chromedp.NewContext(e2etest.Chromium(t))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(srv.HTTP+"/studio/"+name)); err != nil {
		t.Fatal(err)
	}
	e2etest.PollJS(t, ctx, 20*time.Second, "the catalog in the deal form", `document.querySelectorAll('#deal-form select option').length`, func(n int) bool { return n > 0 })

	// Every control of the moment forms has a label and is in the tab
	// order, as the studio's other controls.
	unlabelled := e2etest.EvalJS[[]string](t, ctx, `[...document.querySelectorAll('.moments input, .moments select, .moments button')]
	  .filter((e) => (e.tagName !== 'BUTTON' && e.labels.length === 0) || e.tabIndex < 0 || (e.tagName === 'BUTTON' && !e.textContent.trim()))
	  .map((e) => e.outerHTML)`)
	if len(unlabelled) > 0 {
		t.Errorf("moment controls without a label or out of the tab order: %v", unlabelled)
	}

	type lastMoment struct {
		Cue struct {
			ID string `json:"id"`
		} `json:"cue"`
	}
	last := func(prev string) string {
		t.Helper()
		m, _ := e2etest.PollJS(t, ctx, 20*time.Second, "the studio's answer", `window.shopcast.lastMoment || {cue: {}}`, func(m lastMoment) bool {
			return m.Cue.ID != "" && m.Cue.ID != prev
		})
		if errs := e2etest.EvalJS[[]string](t, ctx, `window.shopcast.errors`); len(errs) > 0 {
			t.Fatalf("studio errors: %v", errs)
		}
		return m.Cue.ID
	}

	// A flash deal on the mug: 9.90 for 10 s, 5 units.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#deal-form select[name="sku"]`), "MUG-CER-350"),
		chromedp.SendKeys(chromedp.CSS(`#deal-form input[name="amount"]`), "9.90"),
		chromedp.SendKeys(chromedp.CSS(`#deal-form input[name="units"]`), "5"),
		chromedp.Focus(chromedp.CSS(`#deal-form button[type="submit"]`)),
		chromedp.KeyEvent(kb.Enter),
	); err != nil {
		t.Fatal(err)
	}
	dealID := last("")
	deal, _ := getCue(t, api, dealID)
	d := deal.Cue.Deal
	if deal.Cue.Type != "deal" || d == nil || d.Product.SKU != "MUG-CER-350" || d.Price.Amount != "9.90" || d.Price.Currency != "EUR" ||
		d.Units != 5 || deal.Cue.DurationMs != 10000 || d.Product.ImageURL != srv.HTTP+"/assets/products/mug.svg" {
		t.Fatalf("the deal form posted %+v", deal.Cue)
	}

	// A product shown with "Show now", then updated from the update form.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#catalog li[data-sku="SNK-42-WHT"] button.show`)), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	type option struct {
		Value string `json:"value"`
		Text  string `json:"text"`
	}
	var prodID string
	e2etest.PollJS(t, ctx, 20*time.Second, "the sneaker in the update form",
		`[...document.querySelectorAll('#update-form select option')].map((o) => ({value: o.value, text: o.textContent}))`,
		func(opts []option) bool {
			for _, o := range opts {
				if o.Text == "Court Classic Sneaker" {
					prodID = o.Value
				}
			}
			return prodID != ""
		})
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#update-form select[name="cue"]`), prodID),
		chromedp.SendKeys(chromedp.CSS(`#update-form input[name="amount"]`), "79.90"),
		chromedp.SendKeys(chromedp.CSS(`#update-form input[name="badge"]`), "Only 3 left"),
		chromedp.Focus(chromedp.CSS(`#update-form button[type="submit"]`)),
		chromedp.KeyEvent(kb.Enter),
	); err != nil {
		t.Fatal(err)
	}
	updID := last(dealID)
	upd, _ := getCue(t, api, updID)
	p := upd.Cue.Product
	if upd.Cue.Type != "product" || upd.Cue.Replaces != prodID || p == nil || p.SKU != "SNK-42-WHT" ||
		p.Price.Amount != "79.90" || p.Badge != "Only 3 left" || upd.State != "active" {
		t.Fatalf("the update form posted %+v (%s)", upd.Cue, upd.State)
	}
	old, _ := getCue(t, api, prodID)
	if old.State != "ended" || old.EndMediaTimeMs == nil || *old.EndMediaTimeMs != upd.MediaTimeMs {
		t.Fatalf("the updated cue: %s, ends at %v; the update starts at %d ms", old.State, old.EndMediaTimeMs, upd.MediaTimeMs)
	}
}

// Package e2e checks shopcast from the outside with software nobody here
// wrote: a real ffmpeg publishing over RTMP like OBS, Debian's chromium
// playing the watch page with hls.js, and nginx and Varnish as CDN edges in
// front of the origin. The server is internal/server, the wiring the binary
// runs, started in this process by internal/e2etest. Screenshots go to
// e2e/artifacts/. The end-to-end tests of ingest, packaging, cues, faults
// and security are in e2e/live, a package of their own so that the two run
// side by side.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/shopcast/shopcast/internal/e2etest"
)

const artifacts = "artifacts"

// The catalog products the test shows (testdata/catalog.json).
const (
	apiSKU    = "MUG-CER-350"
	studioSKU = "HDP-BT-01"
)

// The player's targets on loopback at the default part target (issue 5).
// They are printed, not asserted: a CI machine running other packages'
// tests beside this one cannot promise them. What a viewer would notice is
// asserted: the player keeps up with the live edge (maxLatency).
const (
	targetLatency    = 1500 * time.Millisecond
	targetFirstFrame = 2 * time.Second
	// maxLatency is what hls.js is told to allow (watch page: PART-HOLD-BACK
	// plus one target duration, 3 s at the defaults) plus a part's worth of
	// playlist age: beyond it the player jumps back to the live edge, so a
	// median above it means it failed to.
	maxLatency = 3500 * time.Millisecond
	// blockingReloadTimeout is hls.js's timeout of a blocking playlist
	// reload, max(3 x PART-TARGET, 0.8 x TARGETDURATION) at the defaults
	// (333 ms, 2 s): a part arriving later than that makes hls.js give up
	// on the request and stall.
	blockingReloadTimeout = 1600 * time.Millisecond
)

func TestBrowserWatchAndStudio(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	for _, tool := range []string{"ffmpeg", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: the browser test needs Debian's ffmpeg and chromium (make deps as root, or apt-get install ffmpeg chromium): %v", tool, err)
		}
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	const name = "shop"
	srv := startStream(t, name, 90, "index.m3u8")
	// An independent reader of the same playlist: when the page stalls, it
	// tells whether the parts stopped coming (publisher or packager) or the
	// page fell behind on its own.
	parts := startPartClock(t, srv.url("/live/"+name+"/stream.m3u8"))
	t.Cleanup(func() {
		n, longest, slow := parts.summary(blockingReloadTimeout)
		t.Logf("parts seen by a blocking-reload reader: %d, longest gap %v, %d gaps over hls.js's %v blocking-reload timeout",
			n, longest.Round(time.Millisecond), slow, blockingReloadTimeout)
	})
	base := pagesBase(t, srv, name)

	// The first Run starts the browser: its context has no timeout.
	alloc := e2etest.Chromium(t)
	watch, cancelWatch := chromedp.NewContext(alloc)
	defer cancelWatch()
	if err := chromedp.Do(watch, phone()); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}

	// Play: currentTime advances and hls.js reports no fatal error.
	navigated := time.Now()
	if err := chromedp.Do(watch, chromedp.Navigate(base+"/watch/"+name)); err != nil {
		t.Fatal(err)
	}
	var playingSince time.Time
	var first float64 = -1
	pollPage(t, watch, 20*time.Second, "the video to play", func(p pageState) bool {
		if len(p.Fatal) > 0 {
			t.Fatalf("hls.js fatal error: %+v", p.Fatal)
		}
		if p.CurrentTime > 0 && first < 0 {
			first, playingSince = p.CurrentTime, time.Now()
		}
		return first >= 0 && p.CurrentTime > first+1
	})
	p := readPage(t, watch)
	firstFrame := time.Duration(p.FirstFrameMs * float64(time.Millisecond))
	t.Logf("first_frame=%v (navigation start to the first video frame, page clock; target <= %v); currentTime advanced after %v; state %q",
		firstFrame.Round(time.Millisecond), targetFirstFrame, playingSince.Sub(navigated).Round(time.Millisecond), p.State)
	if p.State != "live" {
		t.Errorf("status line state %q, want live", p.State)
	}
	if p.SDKError != "" {
		t.Errorf("cue SDK did not load: %s", p.SDKError)
	}
	checkVideoFits(t, watch, "watch page, phone")
	shot(t, watch, "watch-phone.png")

	// A product through the cue API.
	api := base + "/api/v1/streams/" + name + "/cues"
	cueID, cueMs := postCue(t, api, apiSKU)
	pollPage(t, watch, 10*time.Second, "the carousel to show "+apiSKU, func(p pageState) bool { return p.has(apiSKU) })
	checkCueStart(t, readPage(t, watch), cueID, cueMs)

	// Accessibility, with a card on screen: names, alt text, and the
	// controls reached and worked by the keyboard alone.
	checkAccessibility(t, watch, "watch page")
	tabTo(t, watch, "#carousel .card a.buy", "the Buy link")
	tabTo(t, watch, "#unmute", "the Unmute button")
	if err := chromedp.Do(watch, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitEval(t, watch, 5*time.Second, "Enter on Unmute to unmute",
		`!document.querySelector('video').muted && document.querySelector('#unmute').textContent === 'Mute'`)
	if err := chromedp.Do(watch, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitEval(t, watch, 5*time.Second, "Enter on Mute to mute again", `document.querySelector('video').muted`)
	shot(t, watch, "watch-phone-product.png")

	if code, b := do(t, http.MethodDelete, api+"/"+cueID, ""); code != http.StatusOK {
		t.Fatalf("DELETE cue: %d %s", code, b)
	}
	pollPage(t, watch, 10*time.Second, "the card of "+apiSKU+" to go", func(p pageState) bool { return !p.has(apiSKU) })

	// Studio, in a second tab: "Show now" reached with Tab and pressed
	// with Enter.
	studio, cancelStudio := chromedp.NewContext(watch)
	defer cancelStudio()
	show := fmt.Sprintf(`#catalog li[data-sku="%s"] button.show`, studioSKU)
	if err := chromedp.Do(studio, phone(), chromedp.Navigate(base+"/studio/"+name), chromedp.WaitVisible(show)); err != nil {
		t.Fatalf("studio: %v", err)
	}
	checkAccessibility(t, studio, "studio page")
	tabTo(t, studio, show, `"Show now" for `+studioSKU)
	if err := chromedp.Do(studio, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	pollPage(t, watch, 10*time.Second, "the watch page to show "+studioSKU+" from the studio", func(p pageState) bool { return p.has(studioSKU) })
	waitEval(t, studio, 10*time.Second, "the studio's active list",
		fmt.Sprintf(`!!document.querySelector('#cues li[data-cue-id]') && !document.querySelector(%s).disabled`,
			jsString(fmt.Sprintf(`#catalog li[data-sku="%s"] button.hide`, studioSKU))))
	// The studio's cue, too, starts on the picture where the API put it.
	code, list := do(t, http.MethodGet, api, "")
	if code != http.StatusOK {
		t.Fatalf("GET cues: %d %s", code, list)
	}
	var listed struct {
		Cues []struct {
			Cue struct {
				ID      string `json:"id"`
				Product struct {
					SKU string `json:"sku"`
				} `json:"product"`
			} `json:"cue"`
			MediaTimeMs int64 `json:"media_time_ms"`
		} `json:"cues"`
	}
	if err := json.Unmarshal([]byte(list), &listed); err != nil {
		t.Fatal(err)
	}
	for _, c := range listed.Cues {
		if c.Cue.Product.SKU == studioSKU {
			checkCueStart(t, readPage(t, watch), c.Cue.ID, c.MediaTimeMs)
		}
	}
	checkVideoFits(t, studio, "studio page, phone")
	shot(t, studio, "studio-phone.png")
	if err := chromedp.Do(studio, desktop()); err != nil {
		t.Fatal(err)
	}
	checkVideoFits(t, studio, "studio page, desktop")
	shot(t, studio, "studio-desktop.png")

	// Latency: hls.latency (live edge + playlist age - currentTime) sampled
	// for 5 s after 20 s of playback. It saws by up to a part between
	// playlist updates, so one reading says little.
	if wait := 20*time.Second - time.Since(playingSince); wait > 0 {
		if err := chromedp.Do(watch, chromedp.Sleep(wait)); err != nil {
			t.Fatal(err)
		}
	}
	var lat []float64
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		if p := readPage(t, watch); p.Latency != nil {
			lat = append(lat, *p.Latency)
		}
		if err := chromedp.Do(watch, chromedp.Sleep(250*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	p = readPage(t, watch)
	if len(p.Fatal) > 0 {
		t.Errorf("hls.js fatal errors during playback: %+v", p.Fatal)
	}
	if len(lat) == 0 {
		t.Errorf("hls.latency unknown after 20 s of playback")
	} else {
		slices.Sort(lat)
		p50, top := lat[len(lat)/2], lat[len(lat)-1]
		t.Logf("latency_p50=%.3fs latency_max=%.3fs (hls.latency, %d samples over 5 s after %v of playback; target <= %v; stalls %d)",
			p50, top, len(lat), time.Since(playingSince).Round(time.Second), targetLatency, p.Stalls)
		if p50 > maxLatency.Seconds() {
			b, _ := json.Marshal(p)
			t.Errorf("the player stays %.1f s behind the live edge, more than the %v it is set to allow; page: %s", p50, maxLatency, b)
		}
	}
	shot(t, watch, "watch-phone-20s.png")
	if err := chromedp.Do(watch, desktop()); err != nil {
		t.Fatal(err)
	}
	checkVideoFits(t, watch, "watch page, desktop")
	shot(t, watch, "watch-desktop.png")
	abs, _ := filepath.Abs(artifacts)
	t.Logf("screenshots in %s", abs)
}

func phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait, chromedp.EmulateMobile)
}

func desktop() chromedp.Action[chromedp.Void] { return chromedp.EmulateViewport(1280, 800) }

// checkCueStart asserts that the cue starts on the picture where the API
// placed it, within one frame. hls.js's video timeline starts where the
// viewer joined; the page maps the cue's start back to the stream's media
// time through hls.js's initPTS.
func checkCueStart(t *testing.T, p pageState, id string, mediaMs int64) {
	t.Helper()
	want := float64(mediaMs) / 1000
	for _, c := range p.Cues {
		if c.ID != id {
			continue
		}
		if c.MediaTime == nil {
			t.Errorf("cue %s: the page does not know the media time of its start %.3f s (no initPTS from hls.js)", id, c.Start)
			return
		}
		off := *c.MediaTime - want
		t.Logf("cue %s: API media time %.3f s; on the video at %.3f s, media time %.3f s, offset %.1f ms",
			id, want, c.Start, *c.MediaTime, off*1000)
		// One frame at 30 fps; media_time_ms is rounded to the ms.
		if math.Abs(off) > 1.0/30+0.001 {
			t.Errorf("cue %s starts %.1f ms from the media time the API placed it at, more than one frame", id, off*1000)
		}
		return
	}
	t.Errorf("cue %s is not in the page's list of started cues", id)
}

// checkAccessibility asks chromium's accessibility tree, which computes
// names as screen readers get them, that every control and image has a
// name, and the DOM that every img has an alt and nothing is taken out of
// the tab order or reordered by tabindex.
func checkAccessibility(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	tree, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("%s: accessibility tree: %v", page, err)
	}
	needName := map[string]bool{"button": true, "link": true, "image": true, "img": true, "textbox": true,
		"checkbox": true, "combobox": true, "slider": true, "searchbox": true, "spinbutton": true, "Video": true}
	checked := 0
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		role := axString(n.Role)
		if !needName[role] {
			continue
		}
		checked++
		if strings.TrimSpace(axString(n.Name)) == "" {
			t.Errorf("%s: a %s has no accessible name (backend node %d)", page, role, n.BackendDOMNodeID)
		}
	}
	if checked == 0 {
		t.Errorf("%s: the accessibility tree has no controls at all", page)
	}
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
  const out = [];
  for (const img of document.querySelectorAll('img:not([alt])')) out.push('img without alt: ' + img.src);
  for (const el of document.querySelectorAll('[tabindex]')) {
    if (el.tabIndex > 0) out.push('positive tabindex reorders the tab order: ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('a[href], button:not([disabled]), input:not([disabled]), select, textarea, video[controls]')) {
    if (el.tabIndex < 0 && el.offsetParent !== null) out.push('not reachable by Tab: ' + el.outerHTML.slice(0, 80));
  }
  if (!document.documentElement.lang) out.push('html has no lang');
  if (!document.querySelector('h1')) out.push('no h1');
  return out;
})()`))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	for _, pr := range problems {
		t.Errorf("%s: %s", page, pr)
	}
	t.Logf("%s: %d named controls and images in the accessibility tree", page, checked)
}

func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(v.Value, &s); err != nil {
		return string(v.Value)
	}
	return s
}

// tabTo presses Tab until sel has the focus, as a keyboard user would
// reach it.
func tabTo(t *testing.T, ctx context.Context, sel, what string) {
	t.Helper()
	for range 40 {
		on, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`!!document.activeElement && document.activeElement.matches(%s)`, jsString(sel))))
		if err != nil {
			t.Fatal(err)
		}
		if on {
			return
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("40 presses of Tab never reached %s (%s)", what, sel)
}

// checkVideoFits asserts that the whole picture is shown: the video box has
// the stream's shape, or the picture is letterboxed in it (object-fit
// contain), never cropped.
func checkVideoFits(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Fit     string  `json:"fit"`
		Box     float64 `json:"box"`
		Picture float64 `json:"picture"`
	}](`(() => {
  const v = document.querySelector('video');
  const r = v.getBoundingClientRect();
  return {fit: getComputedStyle(v).objectFit, box: r.width / r.height, picture: v.videoWidth / v.videoHeight};
})()`))
	if err != nil {
		t.Fatal(err)
	}
	if v.Fit != "contain" && math.Abs(v.Box-v.Picture) > 0.02 {
		t.Errorf("%s: a %.2f:1 picture in a %.2f:1 box with object-fit %s is cropped", where, v.Picture, v.Box, v.Fit)
	}
}

// pageState is what the watch page exposes as window.shopcast.
type pageState struct {
	CurrentTime  float64  `json:"currentTime"`
	State        string   `json:"state"`
	Latency      *float64 `json:"latency"`
	FirstFrameMs float64  `json:"firstFrameMs"`
	Fatal        []any    `json:"fatal"`
	SDKError     string   `json:"sdkError"`
	Cards        []string `json:"cards"`
	Tracks       []any    `json:"tracks"` // diagnostics when a wait times out
	Log          []any    `json:"log"`
	Stalls       int      `json:"stalls"`
	Cues         []struct {
		ID        string   `json:"id"`
		Start     float64  `json:"start"`
		MediaTime *float64 `json:"mediaTime"` // the stream's media time of Start
	} `json:"cues"`
}

func (p pageState) has(sku string) bool {
	for _, c := range p.Cards {
		if c == sku {
			return true
		}
	}
	return false
}

const pageStateJS = `(() => {
  const s = window.shopcast || {errors: [], cues: []};
  const v = document.querySelector('video');
  const lat = s.hls && Number.isFinite(s.hls.latency) ? s.hls.latency : null;
  return {
    currentTime: v ? v.currentTime : 0,
    state: s.state || '',
    latency: lat,
    firstFrameMs: s.firstFrameMs || 0,
    fatal: (s.errors || []).filter((e) => e.fatal),
    sdkError: ((s.errors || []).find((e) => String(e.details).startsWith('cue SDK')) || {}).details || '',
    cards: [...document.querySelectorAll('#carousel .card')].map((c) => c.dataset.sku),
    cues: (s.cues || []).map((c) => ({id: c.id, start: c.start, mediaTime: c.mediaTime})),
    log: (s.log || []).slice(-60),
    stalls: s.stalls || 0,
    tracks: v ? [...v.textTracks].map((tr) => ({kind: tr.kind, label: tr.label, mode: tr.mode,
      cues: tr.cues ? [...tr.cues].slice(-4).map((c) => ({start: c.startTime, end: c.endTime,
        value: JSON.stringify(c.value || c.text || '').slice(0, 120)})) : null})) : [],
  };
})()`

func readPage(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	return e2etest.EvalJS[pageState](t, ctx, pageStateJS)
}

// pollPage reads the page every 200 ms until cond holds.
func pollPage(t *testing.T, ctx context.Context, d time.Duration, what string, cond func(pageState) bool) {
	t.Helper()
	e2etest.PollJS(t, ctx, d, what, pageStateJS, cond)
}

func waitEval(t *testing.T, ctx context.Context, d time.Duration, what, expr string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func shot(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	if err := os.WriteFile(filepath.Join(artifacts, file), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// postCue posts a "now" cue for a catalog product, with absolute URLs as
// the API wants them, and returns the cue's id and media time in ms.
func postCue(t *testing.T, api, sku string) (string, int64) {
	t.Helper()
	cue, _ := json.Marshal(map[string]any{"v": 1, "type": "product", "product": catalogProduct(t, api, sku), "at": "now"})
	created := postCueJSON(t, api, string(cue))
	return created.Cue.ID, created.MediaTimeMs
}

// catalogProduct is product sku of testdata/catalog.json, its image URL
// made absolute on the server of api, as the API wants it.
func catalogProduct(t *testing.T, api, sku string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../testdata/catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	var cat struct {
		Products []map[string]any `json:"products"`
	}
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatal(err)
	}
	for _, p := range cat.Products {
		if p["sku"] != sku {
			continue
		}
		if s, _ := p["image_url"].(string); strings.HasPrefix(s, "/") {
			p["image_url"] = strings.SplitN(api, "/api/", 2)[0] + s
		}
		return p
	}
	t.Fatalf("no product %s in testdata/catalog.json", sku)
	return nil
}

// createdCue is the API's answer to a POST of a cue.
type createdCue struct {
	Cue struct {
		ID string `json:"id"`
	} `json:"cue"`
	MediaTimeMs     int64  `json:"media_time_ms"`
	ProgramDateTime string `json:"program_date_time"`
}

// postCueJSON posts cue (JSON) to api and returns the API's answer; any
// status but 201 fails the test.
func postCueJSON(t *testing.T, api, cue string) createdCue {
	t.Helper()
	code, body := do(t, http.MethodPost, api, cue)
	if code != http.StatusCreated {
		t.Fatalf("POST cue: %d %s", code, body)
	}
	var created createdCue
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	return created
}

func do(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

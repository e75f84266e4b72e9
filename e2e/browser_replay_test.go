package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// The products of the replay test, shown one after the other (testdata/catalog.json).
var replaySKUs = [3]string{"SNK-42-WHT", "MUG-CER-350", "HDP-BT-01"}

// startRecordingShopcast starts shopcast recording on free loopback ports,
// its streams ending grace after their publisher leaves.
func startRecordingShopcast(t *testing.T, grace time.Duration) *shopcast {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: the browser test needs Debian's ffmpeg and chromium (make deps as root, or apt-get install ffmpeg chromium): %v", tool, err)
		}
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := e2etest.Config(t)
	cfg.Record = true
	cfg.GracePeriod = grace
	cfg.RecordMinFreeBytes = 0 // a full disk here is not what is tested
	srv := e2etest.Start(t, cfg)
	return &shopcast{HTTP: srv.Addrs.HTTP.String(), RTMP: srv.Addrs.RTMP.String()}
}

// recordingListing is a recording as the recordings API lists it.
type recordingListing struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	DurationMs int64  `json:"duration_ms"`
	URL        string `json:"url"`
}

// newestRecording returns the stream's newest recording, if any.
func newestRecording(t *testing.T, s *shopcast, name string) (recordingListing, bool) {
	t.Helper()
	body, err := get(context.Background(), s.url("/api/v1/streams/"+name+"/recordings"))
	if err != nil {
		return recordingListing{}, false
	}
	var l struct {
		Recordings []recordingListing `json:"recordings"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("recordings API: %v: %s", err, body)
	}
	if len(l.Recordings) == 0 {
		return recordingListing{}, false
	}
	return l.Recordings[0], true
}

// recordedCue is a cue as a recording's cues.json lists it.
type recordedCue struct {
	ID         string `json:"id"`
	OffsetMs   int64  `json:"offset_ms"`
	DurationMs int64  `json:"duration_ms"`
}

// postScheduledCue posts a cue for a catalog product at a media time, for
// durMs, and returns its id.
func postScheduledCue(t *testing.T, api, sku string, atMs, durMs int64) string {
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
	i := slices.IndexFunc(cat.Products, func(p map[string]any) bool { return p["sku"] == sku })
	if i < 0 {
		t.Fatalf("no product %s in testdata/catalog.json", sku)
	}
	p := cat.Products[i]
	if s, _ := p["image_url"].(string); strings.HasPrefix(s, "/") {
		p["image_url"] = strings.SplitN(api, "/api/", 2)[0] + s
	}
	cue, _ := json.Marshal(map[string]any{"v": 1, "type": "product", "product": p, "at": atMs, "duration_ms": durMs})
	code, body := do(t, http.MethodPost, api, string(cue))
	if code != http.StatusCreated {
		t.Fatalf("POST cue %s: %d %s", sku, code, body)
	}
	var created struct {
		Cue struct {
			ID string `json:"id"`
		} `json:"cue"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	return created.Cue.ID
}

// replayState is what the replay page shows and exposes as window.shopcast.
type replayState struct {
	CurrentTime float64  `json:"currentTime"`
	Duration    float64  `json:"duration"`
	Ended       bool     `json:"ended"`
	Paused      bool     `json:"paused"`
	Rate        float64  `json:"rate"`
	State       string   `json:"state"`
	Cards       []string `json:"cards"`
	// ShownAt is the playback time each card last appeared at.
	ShownAt map[string]float64 `json:"shownAt"`
	Listed  []string           `json:"listed"`
	// Current are the list's entries marked as on screen.
	Current []string `json:"current"`
	Seeks   []struct {
		ID     string   `json:"id"`
		Target float64  `json:"target"`
		Landed *float64 `json:"landed"`
	} `json:"seeks"`
	Errors []any `json:"errors"`
	Log    []any `json:"log"`
}

const replayStateJS = `(() => {
  const s = window.shopcast || {};
  const v = document.querySelector('video');
  return {
    currentTime: v.currentTime, duration: Number.isFinite(v.duration) ? v.duration : -1,
    ended: v.ended, paused: v.paused, rate: v.playbackRate, state: s.state || '',
    cards: [...document.querySelectorAll('#carousel .card')].map((c) => c.dataset.sku),
    listed: [...document.querySelectorAll('#products li')].map((li) => li.dataset.sku || ''),
    current: [...document.querySelectorAll('#products button[aria-current="true"]')].map((b) => b.closest('li').dataset.sku),
    shownAt: s.shownAt || {}, seeks: s.seeks || [], errors: s.errors || [], log: (s.log || []).slice(-30),
  };
})()`

func pollReplay(t *testing.T, ctx context.Context, d time.Duration, what string, cond func(replayState) bool) replayState {
	t.Helper()
	var last replayState
	e2etest.PollJS(t, ctx, d, what, replayStateJS, func(s replayState) bool {
		if fatal := slices.ContainsFunc(s.Errors, func(e any) bool { m, _ := e.(map[string]any); return m["fatal"] == true }); fatal {
			t.Fatalf("replay page: fatal error: %+v", s.Errors)
		}
		last = s
		return cond(s)
	})
	return last
}

// TestBrowserReplay: a sale with three products, one after the other, is
// over; its replay page plays it to the end with the carousel in step,
// its product list seeks to each product, and seeking back brings the
// earlier product back.
func TestBrowserReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	t.Parallel()
	const name = "replay"
	srv := startRecordingShopcast(t, 2*time.Second)
	e2etest.FFmpegOBS(t, "rtmp://"+srv.RTMP+"/live/"+name, 30)
	e2etest.WaitUntil(t, 20*time.Second, "the stream's playlist", func() bool {
		code, _ := status(http.MethodGet, srv.url("/live/"+name+"/index.m3u8"))
		return code == http.StatusOK
	})
	// Three products, 6 s each, 3 s apart: each on screen alone.
	api := srv.url("/api/v1/streams/" + name + "/cues")
	var ids [3]string
	for i, sku := range replaySKUs {
		ids[i] = postScheduledCue(t, api, sku, int64(5000+9000*i), 6000)
	}
	// The browser starts while the sale goes on.
	alloc := e2etest.Chromium(t)
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx, desktop()); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}

	var rec recordingListing
	e2etest.WaitUntil(t, 60*time.Second, "the sale to end and its recording to be closed (VOD)", func() bool {
		var ok bool
		rec, ok = newestRecording(t, srv, name)
		return ok && rec.State == "complete"
	})
	body, err := get(context.Background(), srv.url(strings.TrimSuffix(rec.URL, "index.m3u8")+"cues.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cues []recordedCue
	if err := json.Unmarshal([]byte(body), &cues); err != nil {
		t.Fatalf("cues.json: %v: %s", err, body)
	}
	var offset [3]float64
	for i, id := range ids {
		j := slices.IndexFunc(cues, func(c recordedCue) bool { return c.ID == id })
		if j < 0 {
			t.Fatalf("cue %s is not in cues.json: %s", id, body)
		}
		offset[i] = float64(cues[j].OffsetMs) / 1000
	}
	t.Logf("recording %s: %d ms, products at %.3f s, %.3f s, %.3f s", rec.ID, rec.DurationMs, offset[0], offset[1], offset[2])

	// The index page links the sale to its replay page.
	index, err := get(context.Background(), srv.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	page := "/replay/" + name + "/" + rec.ID
	if !strings.Contains(index, `href="`+page+`"`) {
		t.Errorf("the index page does not link %s: %s", page, index)
	}

	// Start to end, at twice the speed.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url(page))); err != nil {
		t.Fatal(err)
	}
	pollReplay(t, ctx, 15*time.Second, "the replay to play", func(s replayState) bool {
		return s.CurrentTime > 0 && !s.Paused && len(s.Listed) == 3 && !slices.Contains(s.Listed, "")
	})
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('video').playbackRate = 2`)); err != nil {
		t.Fatal(err)
	}
	s := pollReplay(t, ctx, 20*time.Second, "product 1 in the carousel at its time", func(s replayState) bool {
		if s.CurrentTime >= offset[0]+6 {
			t.Fatalf("the replay passed product 1 (%.3f s to %.3f s) without showing it: at %.3f s the carousel has %v",
				offset[0], offset[0]+6, s.CurrentTime, s.Cards)
		}
		return slices.Equal(s.Cards, replaySKUs[:1])
	})
	shown := s.ShownAt[ids[0]]
	t.Logf("product 1 (at %.3f s) appeared at %.3f s (%+.1f ms; read at %.3f s)", offset[0], shown, (shown-offset[0])*1000, s.CurrentTime)
	// Playing at 2x, a time update comes every 0.5 s of video; the page's
	// timer is what keeps the card on time.
	if shown < offset[0] || shown > offset[0]+0.25 {
		t.Errorf("product 1 appeared at %.3f s, its time is %.3f s", shown, offset[0])
	}
	checkAccessibility(t, ctx, "replay page")
	shot(t, ctx, "replay-desktop.png")
	s = pollReplay(t, ctx, 30*time.Second, "the replay to play to its end", func(s replayState) bool {
		return s.Ended
	})
	t.Logf("played to %.3f s of %.3f s (manifest %d ms), ended %v", s.CurrentTime, s.Duration, rec.DurationMs, s.Ended)
	if want := float64(rec.DurationMs) / 1000; math.Abs(s.Duration-want) > 1 {
		t.Errorf("the video lasts %.3f s, the recording %.3f s", s.Duration, want)
	}

	// Product 3 from the list, by the keyboard.
	jump := func(i int) replayState {
		t.Helper()
		sel := fmt.Sprintf(`#products li[data-cue-id="%s"] button`, ids[i])
		if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(kb.Enter)); err != nil {
			t.Fatalf("product %d in the list: %v", i+1, err)
		}
		s := pollReplay(t, ctx, 10*time.Second, fmt.Sprintf("product %d from the list", i+1), func(s replayState) bool {
			n := len(s.Seeks)
			return n > 0 && s.Seeks[n-1].ID == ids[i] && s.Seeks[n-1].Landed != nil &&
				slices.Equal(s.Cards, replaySKUs[i:i+1]) && slices.Equal(s.Current, replaySKUs[i:i+1])
		})
		seek := s.Seeks[len(s.Seeks)-1]
		t.Logf("product %d from the list: seek to %.3f s landed at %.3f s (%+.1f ms); its card appeared at %.3f s",
			i+1, seek.Target, *seek.Landed, (*seek.Landed-seek.Target)*1000, s.ShownAt[ids[i]])
		if math.Abs(*seek.Landed-offset[i]) > 0.1 {
			t.Errorf("product %d: the seek landed at %.3f s, its offset is %.3f s", i+1, *seek.Landed, offset[i])
		}
		return s
	}
	jump(2)

	// Seeking back, as the scrubber does, brings product 1 back alone.
	back := offset[0] + 1
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('video').currentTime = %f`, back))); err != nil {
		t.Fatal(err)
	}
	s = pollReplay(t, ctx, 10*time.Second, "product 1 again after seeking back", func(s replayState) bool {
		return math.Abs(s.CurrentTime-back) < 3 && slices.Equal(s.Cards, replaySKUs[:1])
	})
	t.Logf("seeking back to %.3f s: product 1 on screen at %.3f s", back, s.CurrentTime)
	jump(1)

	// A product's clip, the file a seller posts, plays in Chromium by itself.
	clip := strings.TrimSuffix(rec.URL, "index.m3u8") + "clips/" + ids[1] + ".mp4"
	play := fmt.Sprintf(`(() => { const v = document.createElement('video'); v.id = 'clip'; v.muted = true;
  v.src = %s; document.body.appendChild(v); v.play(); })()`, jsString(clip))
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](play)); err != nil {
		t.Fatal(err)
	}
	var clipState struct {
		CurrentTime float64 `json:"currentTime"`
		Duration    float64 `json:"duration"`
		Error       int     `json:"error"`
		Ended       bool    `json:"ended"`
	}
	e2etest.WaitUntil(t, 20*time.Second, "the clip to play to its end", func() bool {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const v = document.getElementById('clip');
  return JSON.stringify({currentTime: v.currentTime, duration: v.duration || 0, error: v.error ? v.error.code : 0, ended: v.ended}); })()`))
		if err != nil || json.Unmarshal([]byte(st), &clipState) != nil {
			return false
		}
		if clipState.Error != 0 {
			t.Fatalf("Chromium cannot play the clip %s: media error %d", clip, clipState.Error)
		}
		return clipState.Ended
	})
	// The cue lasts 6 s; the clip is cut at the keyframes around it.
	if clipState.Duration < 5.5 || clipState.Duration > 6+2+0.5 {
		t.Errorf("the clip of a 6 s presentation lasts %.3f s in Chromium", clipState.Duration)
	}
	t.Logf("clip %s: played to its end in Chromium, %.3f s", clip, clipState.Duration)
}

// TestBrowserDVR: a viewer of a live sale 25 s in goes back to its start,
// scrubs, and comes back to the live edge.
func TestBrowserDVR(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	t.Parallel()
	const name = "dvr"
	srv := startRecordingShopcast(t, 30*time.Second)
	e2etest.FFmpegOBS(t, "rtmp://"+srv.RTMP+"/live/"+name, 90)
	e2etest.WaitUntil(t, 20*time.Second, "the stream's playlist", func() bool {
		code, _ := status(http.MethodGet, srv.url("/live/"+name+"/index.m3u8"))
		return code == http.StatusOK
	})
	// A product early in the sale, over before the viewer rewinds.
	sku := replaySKUs[0]
	postScheduledCue(t, srv.url("/api/v1/streams/"+name+"/cues"), sku, 3000, 6000)
	alloc := e2etest.Chromium(t)
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx, desktop()); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url("/watch/"+name))); err != nil {
		t.Fatal(err)
	}
	pollPage(t, ctx, 20*time.Second, "the live video to play", func(p pageState) bool { return p.State == "live" && p.CurrentTime > 1 })

	var rec recordingListing
	e2etest.WaitUntil(t, 40*time.Second, "the recording to hold 24 s", func() bool {
		var ok bool
		rec, ok = newestRecording(t, srv, name)
		return ok && rec.State == "recording" && rec.DurationMs >= 24000
	})
	type dvrState struct {
		Mode        string   `json:"mode"`
		CurrentTime float64  `json:"currentTime"`
		Paused      bool     `json:"paused"`
		MediaOffset *float64 `json:"mediaOffset"`
		Latency     *float64 `json:"latency"`
		ScrubMax    float64  `json:"scrubMax"`
		Since       float64  `json:"since"` // s since the switch
		Recording   string   `json:"recording"`
		Cards       []string `json:"cards"`
		Log         []any    `json:"log"`
	}
	const dvrJS = `(() => {
  const s = window.shopcast, v = document.querySelector('video');
  return {mode: s.mode, currentTime: v.currentTime, paused: v.paused, mediaOffset: s.mediaOffset,
    latency: s.hls && Number.isFinite(s.hls.latency) ? s.hls.latency : null,
    scrubMax: Number(document.querySelector('#scrub').max), since: (performance.now() - (s.switchedAt || 0)) / 1000,
    recording: s.recording || '', cards: [...document.querySelectorAll('#carousel .card')].map((c) => c.dataset.sku),
    log: s.log.slice(-30)};
})()`
	press := func(sel string) {
		t.Helper()
		waitEval(t, ctx, 10*time.Second, sel+" to be offered", fmt.Sprintf(`(() => { const b = document.querySelector(%s); return !!b && !b.disabled && !b.hidden; })()`, jsString(sel)))
		if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(kb.Enter)); err != nil {
			t.Fatalf("pressing %s: %v", sel, err)
		}
	}

	// From the start: the recording's media time 0.
	press("#from-start")
	var first dvrState
	e2etest.PollJS(t, ctx, 10*time.Second, "the recording to play from its start", dvrJS, func(s dvrState) bool {
		first = s
		return s.Mode == "dvr" && !s.Paused && s.CurrentTime > 0
	})
	media := math.NaN()
	if first.MediaOffset != nil {
		media = first.CurrentTime + *first.MediaOffset
	}
	t.Logf("from the start (%s): playing at %.3f s (media time %.3f s) %.2f s after the switch", first.Recording, first.CurrentTime, media, first.Since)
	if first.CurrentTime >= 2 || media >= 2 {
		t.Errorf("from the start plays at %.3f s (media time %.3f s), not from 0", first.CurrentTime, media)
	}
	// The carousel follows the recording: the early product comes back.
	e2etest.PollJS(t, ctx, 15*time.Second, "the early product in the carousel from the start", dvrJS, func(v dvrState) bool {
		first = v
		return slices.Equal(v.Cards, []string{sku})
	})
	t.Logf("from the start: the product at media time 3 s on screen at %.3f s", first.CurrentTime)
	if first.CurrentTime < 2.9 || first.CurrentTime > 9 {
		t.Errorf("from the start: the product of 3 s to 9 s showed at %.3f s", first.CurrentTime)
	}
	shot(t, ctx, "watch-dvr.png")

	// Scrubbing: the range spans the recording so far.
	var s dvrState
	e2etest.PollJS(t, ctx, 10*time.Second, "the scrubber to span the recording", dvrJS, func(v dvrState) bool {
		s = v
		return v.ScrubMax >= 20
	})
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => { const r = document.querySelector('#scrub'); r.value = 12; r.dispatchEvent(new Event('input')); })()`)); err != nil {
		t.Fatal(err)
	}
	e2etest.PollJS(t, ctx, 10*time.Second, "the scrubber to seek to 12 s", dvrJS, func(v dvrState) bool {
		s = v
		return !v.Paused && v.CurrentTime >= 12 && v.CurrentTime < 14 && len(v.Cards) == 0
	})
	t.Logf("scrubbed to 12 s of %.1f s: playing at %.3f s", s.ScrubMax, s.CurrentTime)

	// Back to live: the LL-HLS edge, within 2 s.
	press("#to-live")
	e2etest.PollJS(t, ctx, 15*time.Second, "back to live, within 2 s of the edge", dvrJS, func(v dvrState) bool {
		s = v
		return v.Mode == "live" && !v.Paused && v.Latency != nil && *v.Latency <= 2 && len(v.Cards) == 0
	})
	t.Logf("back to live: %.3f s behind the edge (hls.latency) %.2f s after the switch", *s.Latency, s.Since)
	var lat []float64
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		v := e2etest.EvalJS[dvrState](t, ctx, dvrJS)
		if v.Latency != nil {
			lat = append(lat, *v.Latency)
		}
		if err := chromedp.Do(ctx, chromedp.Sleep(250*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatal("no latency after going back to live")
	}
	t.Logf("back to live: latency p50 %.3f s, max %.3f s over 3 s (%d samples)", lat[len(lat)/2], lat[len(lat)-1], len(lat))
	if lat[len(lat)/2] > 2 {
		t.Errorf("back to live plays %.3f s behind the edge, more than 2 s", lat[len(lat)/2])
	}
}

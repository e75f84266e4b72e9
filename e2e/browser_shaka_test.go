package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// shakaPage plays ?src= with Shaka Player from npm, in low-latency mode,
// and shows product cards through the SDK's Shaka adapter, as
// docs/cues.md tells a Shaka user to. It also counts the raw events Shaka
// fires, so that a failure (or the doc) can say which copies arrived.
var shakaPage = playerPage("shopcast with Shaka", shakaJS, "attachShaka", `
const s = window.t = {errors: [], starts: [], ends: [], raw: {}, enter: [], version: shaka.Player.version, latency: null};
shaka.polyfill.installAll();
const player = new shaka.Player();
s.player = player;
player.addEventListener('error', (e) => s.errors.push(String(e.detail && e.detail.code) + ' ' + String(e.detail && e.detail.message || '')));
for (const type of ['metadata', 'emsg', 'timelineregionadded', 'timelineregionenter']) {
  player.addEventListener(type, (e) => {
    const k = type + (e.metadataType ? ' ' + e.metadataType : '');
    s.raw[k] = (s.raw[k] || 0) + 1;
    // How late Shaka's own events come, in video time, for a reader who
    // would show the card on them rather than through the SDK.
    const r = e.detail;
    if (type === 'timelineregionenter' && r && r.schemeIdUri === 'com.shopcast.product') s.enter.push(v.currentTime - r.startTime);
  });
}
const pdt = () => { const d = player.getPlayheadTimeAsDate(); return d ? d.getTime() : 0; };
// Before load: the regions of the first playlist are reported during it.
s.sdk = attachShaka(player, v, cards(s, v, pdt));
setInterval(() => { const st = player.getStats(); s.latency = Number.isFinite(st.liveLatency) ? st.liveLatency : null; }, 500);
(async () => {
  try {
    await player.attach(v);
    player.configure({streaming: {lowLatencyMode: true}});
    await player.load(q.get('src'));
    await v.play();
  } catch (e) {
    s.errors.push('load: ' + (e && (e.code || e.message) || e) + ' ' + String(e && e.stack || '').slice(0, 600));
  }
})();
`)

type shakaState struct {
	CurrentTime float64        `json:"currentTime"`
	Version     string         `json:"version"`
	Errors      []string       `json:"errors"`
	Starts      []cardEvent    `json:"starts"`
	Ends        []cardEvent    `json:"ends"`
	Raw         map[string]int `json:"raw"`
	Latency     *float64       `json:"latency"`
	Enter       []float64      `json:"enter"` // s of video from a region's start to Shaka's timelineregionenter
}

const shakaStateJS = `(() => {
  const s = window.t || {errors: [], starts: [], ends: [], raw: {}};
  const v = document.getElementById('v');
  return {currentTime: v ? v.currentTime : 0, version: s.version || '', errors: s.errors, starts: s.starts,
    ends: s.ends, raw: s.raw, enter: s.enter, latency: s.latency};
})()`

// TestBrowserShaka plays the stream with Shaka Player (npm, pinned) in
// chromium, the LL-HLS playlist and the TS one, and checks that a posted
// cue shows its product card once, on time, and takes it away once, through
// the SDK's attachShaka. On LL-HLS Shaka 5.2 delivers only the DATERANGE
// copy (no ID3 from emsg): the card must come from it alone.
func TestBrowserShaka(t *testing.T) {
	modules := needBrowserPeers(t, shakaJS)
	const name = "shaka"
	srv := startShopcast(t)
	e2etest.FFmpegOBS(t, "rtmp://"+srv.RTMP+"/live/"+name, 75)
	// Shaka 5.2.12 often fails to load a playlist of one or two segments
	// (a TypeError in its networking engine: a request without a URI).
	// Join, as a viewer would, a stream live for a few segments.
	e2etest.WaitUntil(t, 20*time.Second, "the stream's playlist to list four segments", func() bool {
		pl, err := get(t.Context(), srv.url("/live/"+name+"/stream.m3u8"))
		return err == nil && strings.Count(pl, "#EXTINF:") >= 4
	})
	page := startPlayerPages(t, srv, modules, map[string]string{"/shaka": shakaPage})
	api := srv.url("/api/v1/streams/" + name + "/cues")

	// The first Run starts the browser: its context has no timeout.
	browser, cancel := chromedp.NewContext(e2etest.Chromium(t))
	defer cancel()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}

	for _, tc := range []struct {
		name, playlist string
		// late is how long after its start a card may appear, in video
		// time. On LL-HLS the DATERANGE is in the playlist before its
		// part plays, and the SDK times it; a TS segment reaches Shaka
		// only once complete, with its ID3, also ahead of the playhead.
		late time.Duration
	}{
		{name: "llhls", playlist: "index.m3u8", late: 250 * time.Millisecond},
		{name: "ts", playlist: "index_ts.m3u8", late: 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, cancelTab := chromedp.NewContext(browser)
			defer cancelTab()
			src := "/live/" + name + "/" + tc.playlist
			if err := chromedp.Do(tab, chromedp.Navigate(page.URL+"/shaka?src="+url.QueryEscape(src))); err != nil {
				t.Fatal(err)
			}
			first := -1.0
			e2etest.PollJS(t, tab, 30*time.Second, "Shaka to play "+src, shakaStateJS, func(p shakaState) bool {
				if len(p.Errors) > 0 {
					t.Fatalf("Shaka %s: errors %v", p.Version, p.Errors)
				}
				if p.CurrentTime > 0 && first < 0 {
					first = p.CurrentTime
				}
				return first >= 0 && p.CurrentTime > first+1
			})

			const d = 4 * time.Second
			id, _, pdt := postTimedCue(t, api, apiSKU, d)
			t.Cleanup(func() { do(t, http.MethodDelete, api+"/"+id, "") })
			var p shakaState
			e2etest.PollJS(t, tab, 20*time.Second, "the card of cue "+id, shakaStateJS, func(s shakaState) bool {
				p = s
				return countID(s.Starts, id) > 0
			})
			start, _ := firstID(p.Starts, id)
			// Seconds of video between the cue's picture and its card.
			late := start.CT - start.Start
			pdtLate := "unknown"
			if start.PDT > 0 {
				pdtLate = fmt.Sprintf("%.0f ms", start.PDT-float64(pdt.UnixMilli()))
			}
			t.Logf("Shaka %s, %s: card of %s at currentTime %.3f s, %.0f ms of video after the cue's start %.3f s; playhead PDT - the cue's PDT: %s; live latency %v s",
				p.Version, src, id, start.CT, late*1000, start.Start, pdtLate, fmtPtr(p.Latency))
			if late < 0 || late > tc.late.Seconds() {
				t.Errorf("card of %s shown %.0f ms of video after its cue started; want within %v", id, late*1000, tc.late)
			}

			// It goes after d, once, and does not come back.
			var endCT float64
			e2etest.PollJS(t, tab, d+10*time.Second, "the card of "+id+" to go", shakaStateJS, func(s shakaState) bool {
				e, ok := firstID(s.Ends, id)
				endCT = e.CT
				return ok
			})
			e2etest.PollJS(t, tab, 10*time.Second, "two more seconds of video", shakaStateJS, func(s shakaState) bool {
				p = s
				return s.CurrentTime > endCT+2
			})
			b, _ := json.Marshal(p.Raw)
			t.Logf("Shaka events seen: %s; timelineregionenter came %v s of video after the regions' starts", b, p.Enter)
			if n, m := countID(p.Starts, id), countID(p.Ends, id); n != 1 || m != 1 {
				t.Errorf("card of %s shown %d times and taken away %d times; want once each (starts %+v, ends %+v)", id, n, m, p.Starts, p.Ends)
			}
			if shown := endCT - start.Start; shown < d.Seconds()-0.25 || shown > d.Seconds()+0.25 {
				t.Errorf("card of %s on screen for %.2f s of video; the cue lasts %v", id, shown, d)
			}
		})
	}
}

func fmtPtr(f *float64) string {
	if f == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.3f", *f)
}

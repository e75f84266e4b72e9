package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// hlsjsPage is what docs/cues.md tells a player developer to write: the
// full hls.js build from npm with the config the doc gives (CONFIG below is
// replaced by it), the SDK attached before hls.js gets the video. It
// samples the latency every 250 ms, and notes every seek (hls.js jumps to
// the live edge when it falls too far behind).
var hlsjsPage = playerPage("shopcast with hls.js", hlsjsFull, "attach", `
const s = window.t = {errors: [], starts: [], ends: [], samples: [], tracks: [], seeks: [], offset: null, stalls: 0, version: Hls.version};
const pdt = () => (s.hls && s.hls.playingDate ? s.hls.playingDate.getTime() : 0);
s.sdk = attach(v, cards(s, v, pdt));
// Whether chromium wiped hls.js's id3 track after hls.js put cues on it.
new MutationObserver((ms) => { for (const m of ms) for (const n of m.addedNodes) if (n.tagName === 'TRACK') {
  const ev = (what) => s.tracks.push({what, ct: v.currentTime, cues: n.track.cues ? n.track.cues.length : -1});
  ev('appended');
  n.addEventListener('load', () => ev('loaded'));
}}).observe(v, {childList: true});
const hls = s.hls = new Hls(CONFIG);
hls.on(Hls.Events.ERROR, (_, d) => s.errors.push({details: d.details, fatal: !!d.fatal}));
hls.on(Hls.Events.INIT_PTS_FOUND, (_, d) => { if (d.id === 'main') s.offset = d.initPTS / d.timescale; });
v.addEventListener('waiting', () => { if (v.played.length) s.stalls++; });
let lastCT = 0;
v.addEventListener('timeupdate', () => { if (!v.seeking) lastCT = v.currentTime; });
v.addEventListener('seeking', () => s.seeks.push({from: lastCT, to: v.currentTime}));
setInterval(() => {
  const d = hls.latestLevelDetails;
  const f = d && d.fragments[0];
  const at = hls.playingDate;
  if (!d || !v.played.length || !Number.isFinite(hls.latency) || !f || !f.programDateTime || !at) return;
  // The playlist's live edge (the end of its last part) as a date, minus
  // the date at the playhead: what PART-HOLD-BACK is a distance of.
  const edgeDate = f.programDateTime + (d.edge - f.start) * 1000;
  s.samples.push({t: Date.now(), edge: (edgeDate - at.getTime()) / 1000, lat: hls.latency, target: hls.targetLatency, phb: d.partHoldBack || 0,
    rate: v.playbackRate, buf: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0,
    stalls: s.stalls});
}, 250);
hls.loadSource(q.get('src'));
hls.attachMedia(v);
v.play().catch((e) => s.errors.push({details: 'play(): ' + e, fatal: false}));
`)

type latencySample struct {
	T float64 `json:"t"` // ms since the epoch
	// Edge is the program date-time of the playlist's live edge minus the
	// program date-time at the playhead, in s.
	Edge   float64 `json:"edge"`
	Lat    float64 `json:"lat"`    // hls.latency: live edge + playlist age - currentTime
	Target float64 `json:"target"` // hls.targetLatency: PART-HOLD-BACK plus what stalls added
	PHB    float64 `json:"phb"`    // the playlist's PART-HOLD-BACK
	Rate   float64 `json:"rate"`
	Buf    float64 `json:"buf"`
	Stalls int     `json:"stalls"`
}

type hlsjsState struct {
	CurrentTime float64 `json:"currentTime"`
	Version     string  `json:"version"`
	Errors      []struct {
		Details string `json:"details"`
		Fatal   bool   `json:"fatal"`
	} `json:"errors"`
	Starts  []cardEvent     `json:"starts"`
	Ends    []cardEvent     `json:"ends"`
	Samples []latencySample `json:"samples"`
	Tracks  []any           `json:"tracks"`
	Seeks   []struct {
		From float64 `json:"from"`
		To   float64 `json:"to"`
	} `json:"seeks"`
	Offset *float64 `json:"offset"`
	// Copies: for each cue the SDK knows, which copies it registered.
	Copies map[string]struct {
		ID3       bool `json:"id3"`
		DateRange bool `json:"daterange"`
	} `json:"copies"`
	// OnTrack: the shopcast cues still on the id3 track, per cue id and copy.
	OnTrack map[string]map[string]int `json:"onTrack"`
}

const hlsjsStateJS = `(() => {
  const s = window.t || {errors: [], starts: [], ends: [], samples: [], tracks: []};
  const v = document.getElementById('v');
  const copies = {};
  if (s.sdk) for (const [id, e] of s.sdk.entries) copies[id] = {id3: Number.isFinite(e.id3Start), daterange: e.ranges.size > 0};
  const onTrack = {};
  for (const tr of v.textTracks) for (const c of (tr.cues || [])) {
    const val = c.value || {};
    let kind = '';
    if (val.key === 'TXXX' && val.info === 'shopcast') kind = 'id3';
    else if (val.key === 'X-COM-SHOPCAST-CUE') kind = 'daterange';
    else continue;
    const id = kind === 'id3' ? (() => { try { return JSON.parse(val.data).id; } catch (e) { return '?'; } })() : c.id;
    onTrack[id] = onTrack[id] || {};
    onTrack[id][kind] = (onTrack[id][kind] || 0) + 1;
  }
  return {currentTime: v.currentTime, version: s.version || '', errors: s.errors, starts: s.starts, ends: s.ends,
    samples: s.samples, tracks: s.tracks, seeks: s.seeks, offset: s.offset, copies, onTrack};
})()`

// hlsjsDocConfig returns the hls.js config object docs/cues.md gives
// player developers: the test plays with exactly what the doc says.
func hlsjsDocConfig(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/cues.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nconst hls = new Hls\((\{\n.*?\n\})\);\n`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/cues.md has no `const hls = new Hls({...});` block: the config this test plays with")
	}
	return string(m[1])
}

// TestBrowserStockHLS plays the LL-HLS stream with the full hls.js build
// from npm, configured as docs/cues.md says, and checks what a viewer would
// notice: the player stays at the playlist's target latency, and the first
// cue of the session (the one hls.js creates its id3 track for, and which
// chromium then often wipes off it) shows its card once, in sync.
//
// Latency is the program date-time of the playlist's live edge minus that
// at the playhead, against the playlist's PART-HOLD-BACK (RFC 8216bis
// 4.4.3.8: the distance from the end of the playlist at which to play),
// not against hls.targetLatency: hls.js raises that after each stall,
// which is the drift the doc's config is there to stop. hls.latency, which
// adds the playlist's age, is logged beside it.
func TestBrowserStockHLS(t *testing.T) {
	modules := needBrowserPeers(t, hlsjsFull)
	config := hlsjsDocConfig(t)
	const name = "stock"
	// window is how long the latency is held; settle, how long the player
	// gets to reach its target after the first frame.
	const window, settle = 60 * time.Second, 10 * time.Second
	srv := startStream(t, name, 100, "stream.m3u8")
	parts := startPartClock(t, srv.url("/live/"+name+"/stream.m3u8"))
	page := startPlayerPages(t, srv, modules, map[string]string{
		"/hlsjs": strings.Replace(hlsjsPage, "CONFIG", config, 1),
	})
	api := srv.url("/api/v1/streams/" + name + "/cues")

	browser, cancel := chromedp.NewContext(e2etest.Chromium(t))
	defer cancel()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	src := "/live/" + name + "/index.m3u8"
	if err := chromedp.Do(browser, chromedp.Navigate(page.URL+"/hlsjs?src="+url.QueryEscape(src))); err != nil {
		t.Fatal(err)
	}
	var playing time.Time
	e2etest.PollJS(t, browser, 30*time.Second, "hls.js to play "+src, hlsjsStateJS, func(p hlsjsState) bool {
		for _, e := range p.Errors {
			if e.Fatal {
				t.Fatalf("hls.js fatal error: %+v", p.Errors)
			}
		}
		if p.CurrentTime > 0 && playing.IsZero() {
			playing = time.Now()
		}
		return len(p.Samples) > 0
	})

	// The first cue of the session, while the player settles.
	const d = 20 * time.Second
	id, mediaMs, pdt := postTimedCue(t, api, apiSKU, d)
	t.Cleanup(func() { do(t, http.MethodDelete, api+"/"+id, "") })
	checkDateRangeEnd(t, srv.url("/live/"+name+"/stream.m3u8"), id, d)
	var p hlsjsState
	e2etest.PollJS(t, browser, 15*time.Second, "the card of the first cue "+id, hlsjsStateJS, func(s hlsjsState) bool {
		p = s
		return countID(s.Starts, id) > 0
	})
	start, _ := firstID(p.Starts, id)
	copies, _ := json.Marshal(p.Copies[id])
	onTrack, _ := json.Marshal(p.OnTrack[id])
	t.Logf("hls.js %s: card of the first cue %s at currentTime %.3f s, %.0f ms of video after its start %.3f s; playhead PDT - the cue's PDT %.0f ms; copies the SDK read %s, still on the id3 track %s; track %v",
		p.Version, id, start.CT, (start.CT-start.Start)*1000, start.Start, start.PDT-float64(pdt.UnixMilli()), copies, onTrack, p.Tracks)
	if p.Offset == nil {
		t.Errorf("hls.js reported no initPTS: the cue's start cannot be mapped to media time")
	} else if off := start.Start + *p.Offset - float64(mediaMs)/1000; math.Abs(off) > 1.0/30+0.001 {
		t.Errorf("the first cue's card starts %.1f ms from the media time the API placed it at, more than a frame", off*1000)
	}
	// The SDK is told of every copy as hls.js adds it, so the card is on
	// time, unless hls.js jumped over the cue's start (back to the live
	// edge after a stall), when it shows at the landing.
	jumped := false
	for _, sk := range p.Seeks {
		jumped = jumped || (sk.From <= start.Start && sk.To >= start.Start)
	}
	if late := start.CT - start.Start; late > 0.25 && !jumped {
		t.Errorf("the first cue's card came %.0f ms of video after its start (seeks %+v)", late*1000, p.Seeks)
	} else if jumped {
		t.Logf("hls.js jumped over the cue's start (seeks %+v): the card came at the landing", p.Seeks)
	}

	// The latency, over window once settled; the cue ends meanwhile.
	if wait := settle - time.Since(playing); wait > 0 {
		e2etest.PollJS(t, browser, wait+5*time.Second, "the player to settle", hlsjsStateJS, func(hlsjsState) bool {
			return time.Since(playing) >= settle
		})
	}
	from := float64(time.Now().UnixMilli())
	e2etest.PollJS(t, browser, window+10*time.Second, fmt.Sprintf("%v of playback", window), hlsjsStateJS, func(s hlsjsState) bool {
		p = s
		return float64(time.Now().UnixMilli()) >= from+float64(window.Milliseconds())
	})
	for _, e := range p.Errors {
		if e.Fatal {
			t.Errorf("hls.js fatal error during playback: %+v", e)
		}
	}
	if n, m := countID(p.Starts, id), countID(p.Ends, id); n != 1 || m != 1 {
		t.Errorf("card of the first cue %s shown %d times and taken away %d times over %v; want once each (starts %+v, ends %+v, on the track %v)",
			id, n, m, time.Since(playing).Round(time.Second), p.Starts, p.Ends, p.OnTrack[id])
	}
	checkLatency(t, p.Samples, from, parts)
}

// checkLatency asserts that every 5 s of samples from from on has a median
// latency (Edge) within 0.3 s of the playlist's PART-HOLD-BACK. One window
// may miss when the parts themselves stopped for longer than hls.js waits
// for them: the player is then behind through no fault of its own, and
// has 5 s to get back.
func checkLatency(t *testing.T, samples []latencySample, from float64, parts *partClock) {
	t.Helper()
	var edge, lat []float64
	var phb, target, rate float64
	stalls0, stalls1 := -1, 0
	var slots [][]float64
	for _, s := range samples {
		if s.T < from {
			continue
		}
		i := int((s.T - from) / 5000)
		for len(slots) <= i {
			slots = append(slots, nil)
		}
		slots[i] = append(slots[i], s.Edge)
		edge, lat = append(edge, s.Edge), append(lat, s.Lat)
		phb, target, rate = s.PHB, max(target, s.Target), max(rate, s.Rate)
		if stalls0 < 0 {
			stalls0 = s.Stalls
		}
		stalls1 = s.Stalls
	}
	if len(edge) < 40 || phb == 0 {
		t.Fatalf("%d latency samples, PART-HOLD-BACK %.3f s: hls.js did not report its latency", len(edge), phb)
	}
	n, longest, slow := parts.summary(blockingReloadTimeout)
	slices.Sort(edge)
	slices.Sort(lat)
	var medians []string
	bad := 0
	for _, sl := range slots {
		if len(sl) == 0 {
			continue
		}
		slices.Sort(sl)
		m := sl[len(sl)/2]
		medians = append(medians, fmt.Sprintf("%.2f", m))
		if math.Abs(m-phb) > 0.3 {
			bad++
		}
	}
	t.Logf("latency (edge PDT - playhead PDT) over %d samples: p10 %.3f s, p50 %.3f s, p90 %.3f s, max %.3f s against PART-HOLD-BACK %.3f s; 5-s medians %v",
		len(edge), quantile(edge, 0.1), quantile(edge, 0.5), quantile(edge, 0.9), edge[len(edge)-1], phb, medians)
	t.Logf("hls.latency p10 %.3f s, p50 %.3f s, p90 %.3f s; highest targetLatency %.3f s, highest playbackRate %.2f, stalls %d; parts seen by a blocking-reload reader %d, longest gap %v, %d over %v",
		quantile(lat, 0.1), quantile(lat, 0.5), quantile(lat, 0.9), target, rate, stalls1-stalls0, n, longest.Round(time.Millisecond), slow, blockingReloadTimeout)
	allowed := 0
	if slow > 0 {
		allowed = 1
	}
	if bad > allowed {
		t.Errorf("the latency was more than 0.3 s from the playlist's %.3f s target in %d of %d 5-s windows (medians %v; %d part gaps over %v)",
			phb, bad, len(medians), medians, slow, blockingReloadTimeout)
	}
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// checkDateRangeEnd asserts what docs/cues.md says of an active cue with a
// duration: its DATERANGE already has END-DATE and DURATION.
func checkDateRangeEnd(t *testing.T, playlistURL, id string, d time.Duration) {
	t.Helper()
	var line string
	e2etest.WaitUntil(t, 5*time.Second, "the DATERANGE of "+id, func() bool {
		pl, err := get(t.Context(), playlistURL)
		if err != nil {
			return false
		}
		for _, l := range strings.Split(pl, "\n") {
			if strings.HasPrefix(l, `#EXT-X-DATERANGE:ID="`+id+`"`) {
				line = l
				return true
			}
		}
		return false
	})
	want := fmt.Sprintf(`DURATION=%.3f`, d.Seconds())
	if !strings.Contains(line, `,END-DATE="`) || !strings.Contains(line, want) {
		t.Errorf("the DATERANGE of active cue %s lacks END-DATE or %s: %.200s", id, want, line)
	}
}

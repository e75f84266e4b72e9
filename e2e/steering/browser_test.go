package steering

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// monitorJS watches the page's video: every waiting->playing span, and
// every span in which currentTime did not move while the video was not
// paused, on the page clock (performance.now). killAt is set by the test
// just before the kill.
const monitorJS = `(() => {
  const v = document.querySelector('video');
  const m = window.__steer = {waits: [], freezes: [], killAt: null, waitStart: null, lastCT: -1, lastMove: performance.now()};
  v.addEventListener('waiting', () => { if (m.waitStart === null) m.waitStart = performance.now(); });
  v.addEventListener('playing', () => {
    if (m.waitStart !== null) m.waits.push({at: m.waitStart, ms: performance.now() - m.waitStart});
    m.waitStart = null;
  });
  setInterval(() => {
    const now = performance.now();
    if (v.currentTime !== m.lastCT) {
      if (m.lastCT > 0 && now - m.lastMove > 100) m.freezes.push({at: m.lastMove, ms: now - m.lastMove});
      m.lastCT = v.currentTime; m.lastMove = now;
    }
  }, 20);
  return true;
})()`

// stallSince is the longest stall that ended or is going on after the
// kill: the longer of the waiting->playing spans and the currentTime
// freezes, in ms.
const stallJS = `(() => {
  const m = window.__steer, now = performance.now();
  const after = (s) => s.at + s.ms >= m.killAt;
  let worst = 0;
  for (const s of m.waits.concat(m.freezes)) if (after(s)) worst = Math.max(worst, s.ms);
  if (m.waitStart !== null) worst = Math.max(worst, now - m.waitStart);
  worst = Math.max(worst, now - m.lastMove);
  return worst;
})()`

type watchState struct {
	CurrentTime float64  `json:"currentTime"`
	Pathway     string   `json:"pathway"`
	Latency     *float64 `json:"latency"`
	CueEntries  int      `json:"cueEntries"`
	CueEnded    bool     `json:"cueEnded"`
	Cards       int      `json:"cards"`
	Errors      []string `json:"errors"`
}

func watchStateJS(cueID string) string {
	return fmt.Sprintf(`(() => {
  const s = window.shopcast || {}, v = document.querySelector('video'), h = s.hls;
  const lvl = h && h.levels && h.levels[h.currentLevel];
  const mine = (s.cues || []).filter((c) => c.id === %[1]q);
  return {
    currentTime: v ? v.currentTime : 0,
    pathway: lvl ? (lvl.pathwayId || '') : '',
    latency: s.latency,
    cueEntries: mine.length,
    cueEnded: mine.some((c) => c.end !== null),
    cards: document.querySelectorAll('#carousel [data-cue-id="' + %[1]q + '"]').length,
    errors: (s.errors || []).map(String).slice(-5),
  };
})()`, cueID)
}

// postCue posts the same product cue, with the same explicit start, to
// every node: the way a studio feeds redundant origins.
func postCue(t testing.TB, id string, at time.Time, d time.Duration, bases ...string) {
	t.Helper()
	body := fmt.Sprintf(`{"v":1,"id":%q,"type":"product","product":{"sku":"SNK-42","title":"Court Classic Sneaker",`+
		`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/p/snk-42.jpg",`+
		`"url":"https://shop.example.com/p/snk-42"},"at":%q,"duration_ms":%d}`, id, at.UTC().Format(time.RFC3339Nano), d.Milliseconds())
	for _, base := range bases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/streams/"+stream+"/cues", bytesReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST cue %s to %s: %d", id, base, resp.StatusCode)
		}
	}
}

// failover is one run: the watch page of node a plays pathway a, a cue
// starts on both nodes, node a is killed with kill -9, and the page must
// go on from pathway b. It returns the longest stall after the kill.
func failover(t testing.TB, alloc context.Context, run int) time.Duration {
	t.Helper()
	p := startPair(t, alignedKeys())
	p.feed(t, 300)
	a, b := p.nodes[0], p.nodes[1]

	tab, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(tab, chromedp.Navigate(a.HTTP+"/watch/"+stream)); err != nil {
		t.Fatal(err)
	}
	e2etest.EvalJS[bool](t, tab, monitorJS)
	if !e2etest.EvalJS[bool](t, tab, `typeof Hls.DefaultConfig.contentSteeringController === 'function'`) {
		t.Fatal("the watch page loaded an hls.js build without the content steering controller")
	}
	cueID := fmt.Sprintf("steer-%d", run)
	state := watchStateJS(cueID)
	var first float64
	e2etest.PollJS(t, tab, 40*time.Second, "hls.js to play pathway a", state, func(s watchState) bool {
		if first == 0 && s.CurrentTime > 0 {
			first = s.CurrentTime
		}
		return s.Pathway == "a" && first > 0 && s.CurrentTime > first+4 && s.Latency != nil
	})

	// A product that starts now on both nodes and lasts past the kill.
	postCue(t, cueID, time.Now(), 60*time.Second, a.HTTP, b.HTTP)
	e2etest.PollJS(t, tab, 15*time.Second, "the product card", state, func(s watchState) bool { return s.Cards == 1 })

	// The latency before the kill: the median over 3 s.
	var lats []float64
	for range 15 {
		s := e2etest.EvalJS[watchState](t, tab, state)
		if s.Latency != nil {
			lats = append(lats, *s.Latency)
		}
		_ = chromedp.Do(tab, chromedp.Sleep(200*time.Millisecond))
	}
	before := median(lats)

	e2etest.EvalJS[float64](t, tab, `window.__steer.killAt = performance.now()`)
	a.Kill()
	atKill := e2etest.EvalJS[watchState](t, tab, state).CurrentTime

	e2etest.PollJS(t, tab, 30*time.Second, "hls.js to play on from pathway b", state, func(s watchState) bool {
		return s.Pathway == "b" && s.CurrentTime > atKill+5
	})
	stall := time.Duration(e2etest.EvalJS[float64](t, tab, stallJS) * float64(time.Millisecond))

	after, took := e2etest.PollJS(t, tab, 30*time.Second, fmt.Sprintf("the latency back within 0.5 s of %.3f s", before), state, func(s watchState) bool {
		return s.Latency != nil && *s.Latency <= before+0.5
	})
	s := e2etest.EvalJS[watchState](t, tab, state)
	errs := e2etest.EvalJS[int](t, tab, `window.shopcast.log.filter((e) => e.what === 'error' && e.t >= window.__steer.killAt).length`)
	t.Logf("run %d: longest stall after kill -9 %v (%d hls.js errors after it); latency %.3f s before, %.3f s after (back %v later); cue shown %d time(s), cards %d",
		run, stall.Round(time.Millisecond), errs, before, *after.Latency, took.Round(100*time.Millisecond), s.CueEntries, s.Cards)
	if stall > time.Second {
		t.Errorf("run %d: a stall of %v after the kill, more than 1 s", run, stall)
	}
	if s.CueEntries != 1 || s.Cards != 1 || s.CueEnded {
		t.Errorf("run %d: the cue active across the kill was shown %d times (cards %d, ended %v), want once", run, s.CueEntries, s.Cards, s.CueEnded)
	}
	return stall
}

// TestHLSJSFailover: hls.js on the watch page keeps playing through kill
// -9 of the origin it plays from.
func TestHLSJSFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	alloc := e2etest.Chromium(t)
	failover(t, alloc, 0)
}

// TestShakaFailover: Shaka Player plays the steered multivariant playlist
// (without its low-latency mode, see shakaPage) and moves to pathway b on
// kill -9 of node a.
func TestShakaFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	root, err := e2etest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join(root, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "shaka-player", "dist", "shaka-player.compiled.js")); err != nil {
		t.Fatalf("node_modules/shaka-player is missing (make deps runs npm ci): %v", err)
	}
	alloc := e2etest.Chromium(t)
	p := startPair(t, alignedKeys())
	p.feed(t, 300)
	a, b := p.nodes[0], p.nodes[1]

	mux := http.NewServeMux()
	mux.HandleFunc("GET /shaka", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(shakaPage))
	})
	mux.Handle("GET /node_modules/", http.StripPrefix("/node_modules/", http.FileServer(http.Dir(modules))))
	page := httptest.NewServer(mux)
	defer page.Close()

	tab, cancel := chromedp.NewContext(alloc)
	defer cancel()
	src := a.HTTP + "/live/" + stream + "/index.m3u8"
	if err := chromedp.Do(tab, chromedp.Navigate(page.URL+"/shaka?ll=0&src="+url.QueryEscape(src))); err != nil {
		t.Fatal(err)
	}
	var first float64
	e2etest.PollJS(t, tab, 40*time.Second, "Shaka to play from node a", shakaStateJS, func(s shakaState) bool {
		if len(s.Errors) > 0 {
			t.Fatalf("Shaka: %v", s.Errors)
		}
		if first == 0 && s.CurrentTime > 0 {
			first = s.CurrentTime
		}
		return first > 0 && s.CurrentTime > first+3 && s.Host == hostOf(a.HTTP)
	})
	a.Kill()
	atKill := e2etest.EvalJS[shakaState](t, tab, shakaStateJS).CurrentTime
	s, took := e2etest.PollJS(t, tab, 40*time.Second, "Shaka to play on from node b", shakaStateJS, func(s shakaState) bool {
		return s.Host == hostOf(b.HTTP) && s.CurrentTime > atKill+5
	})
	t.Logf("Shaka %s: on pathway b and 5 s of video past the kill %v after it", s.Version, took.Round(100*time.Millisecond))
}

func hostOf(u string) string {
	p, _ := url.Parse(u)
	return p.Host
}

// shakaPage plays ?src= with Shaka Player and records the host of the
// last segment request, the pathway it plays. ll=0 turns Shaka's
// lowLatencyMode off: with it on, Shaka 5.2.12 fails to load a steered
// LL-HLS playlist (a TypeError in its first init segment request, whose
// URI list is empty), so the test plays the steered playlist the way
// Shaka can.
const shakaPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shopcast steering with Shaka</title></head>
<body><video id="v" muted autoplay playsinline></video>
<script src="/node_modules/shaka-player/dist/shaka-player.compiled.js"></script>
<script>
const q = new URLSearchParams(location.search);
const v = document.getElementById('v');
const s = window.t = {errors: [], host: '', version: shaka.Player.version};
shaka.polyfill.installAll();
const player = new shaka.Player();
player.addEventListener('error', (e) => s.errors.push(String(e.detail && e.detail.code)));
player.getNetworkingEngine().registerResponseFilter((type, resp) => {
  if (type === shaka.net.NetworkingEngine.RequestType.SEGMENT) s.host = new URL(resp.uri).host;
});
(async () => {
  try {
    await player.attach(v);
    player.configure({streaming: {lowLatencyMode: q.get('ll') !== '0'}});
    await player.load(q.get('src'));
    await v.play();
  } catch (e) {
    s.errors.push('load: ' + (e && (e.code || e.message) || e) + ' ' + JSON.stringify(e && e.data || null).slice(0, 800) + ' ' + String(e && e.stack || '').slice(0, 800));
  }
})();
</script></body></html>`

type shakaState struct {
	CurrentTime float64  `json:"currentTime"`
	Host        string   `json:"host"`
	Version     string   `json:"version"`
	Errors      []string `json:"errors"`
}

const shakaStateJS = `(() => ({currentTime: document.getElementById('v').currentTime, host: window.t.host, version: window.t.version, errors: window.t.errors.slice(-5)}))()`

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkHLSJSFailover measures the longest stall hls.js shows after
// kill -9 of the origin it plays from, over 10 runs, each on a fresh pair
// of nodes (make bench; docs/benchmarks.md).
func BenchmarkHLSJSFailover(b *testing.B) {
	alloc := e2etest.Chromium(b)
	const runs = 10
	var stalls []float64
	for i := range runs {
		b.Run(fmt.Sprintf("run%d", i), func(b *testing.B) {
			for b.Loop() {
				stalls = append(stalls, float64(failover(b, alloc, i).Milliseconds()))
			}
		})
	}
	if len(stalls) == 0 {
		return
	}
	slices.Sort(stalls)
	b.Logf("hls.js failover stall after kill -9 of the playing origin, %d runs: p50 %.0f ms, max %.0f ms; all (ms) %v",
		len(stalls), median(stalls), stalls[len(stalls)-1], stalls)
}

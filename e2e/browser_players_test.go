package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The players a developer brings, as npm serves them (package.json pins
// them; `npm ci`, which make deps runs, puts them in node_modules): the
// full hls.js build, not the light one the watch page vendors, and Shaka.
const (
	hlsjsFull = "hls.js/dist/hls.min.js"
	shakaJS   = "shaka-player/dist/shaka-player.compiled.js"
)

// needBrowserPeers fails the test, never skips it, when a peer is missing:
// a skip would pass CI without checking the players at all.
func needBrowserPeers(t *testing.T, modules ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	for _, tool := range []string{"ffmpeg", "/usr/bin/chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: the player tests need Debian's ffmpeg and chromium (make deps as root, or apt-get install ffmpeg chromium): %v", tool, err)
		}
	}
	dir, err := filepath.Abs("../node_modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modules {
		if _, err := os.Stat(filepath.Join(dir, m)); err != nil {
			t.Fatalf("node_modules/%s is missing: run `npm ci` in the repository root (make deps does): %v", m, err)
		}
	}
	return dir
}

// startPlayerPages serves pages (path -> HTML) on a loopback server of
// their own, with node_modules under /node_modules/ and shopcast's /live/,
// /sdk/ and /api/ proxied, so that the page, the player and the stream
// share an origin as they would behind one CDN host.
func startPlayerPages(t *testing.T, srv *shopcast, modules string, pages map[string]string) *httptest.Server {
	t.Helper()
	target, _ := url.Parse(srv.url(""))
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		// Blocking playlist reloads and parts stream through at once.
		FlushInterval: -1,
	}
	mux := http.NewServeMux()
	for path, html := range pages {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write([]byte(html))
		})
	}
	mux.Handle("GET /node_modules/", http.StripPrefix("/node_modules/", http.FileServer(http.Dir(modules))))
	for _, p := range []string{"/live/", "/sdk/", "/api/"} {
		mux.Handle(p, proxy)
	}
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	return page
}

// postTimedCue posts a "now" cue for a catalog product lasting d, and
// returns the API's answer: the id, its media time and its program
// date-time.
func postTimedCue(t *testing.T, api, sku string, d time.Duration) (id string, mediaMs int64, pdt time.Time) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"v": 1, "type": "product", "product": catalogProduct(t, api, sku), "at": "now", "duration_ms": d.Milliseconds()})
	created := postCueJSON(t, api, string(body))
	pdt, err := time.Parse(time.RFC3339Nano, created.ProgramDateTime)
	if err != nil {
		t.Fatalf("POST cue: program_date_time %q: %v", created.ProgramDateTime, err)
	}
	return created.Cue.ID, created.MediaTimeMs, pdt
}

// cardEvent is one cuestart or cueend the SDK gave a page.
type cardEvent struct {
	ID string  `json:"id"`
	CT float64 `json:"ct"` // video.currentTime when it fired
	// Start is the SDK's start of the cue on the video's timeline.
	Start float64 `json:"start"`
	// PDT is the program date-time at the playhead when it fired, in ms
	// since the epoch (the player's own mapping), 0 if unknown.
	PDT float64 `json:"pdt"`
}

func countID(evs []cardEvent, id string) int {
	n := 0
	for _, e := range evs {
		if e.ID == id {
			n++
		}
	}
	return n
}

func firstID(evs []cardEvent, id string) (cardEvent, bool) {
	for _, e := range evs {
		if e.ID == id {
			return e, true
		}
	}
	return cardEvent{}, false
}

// playerPage is a page that plays with a player from npm (script, under
// node_modules) and shows product cards through the SDK's adapter for it
// (adapter, imported from the SDK): title, the video, the player's script,
// then a module with cards (pageCardsJS), q (the query string) and v (the
// video) defined, which runs body.
func playerPage(title, script, adapter, body string) string {
	return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>` + title + `</title></head>
<body><video id="v" muted autoplay playsinline></video>
<script src="/node_modules/` + script + `"></script>
<script type="module">
import { ` + adapter + ` } from '/sdk/shopcast-cues.js';
` + pageCardsJS + `
const q = new URLSearchParams(location.search);
const v = document.getElementById('v');` + body + `</script></body></html>`
}

// pageCardsJS is the part of both pages that records what the SDK does
// with a cue: the card a viewer would see come and go.
const pageCardsJS = `
const cards = (s, v, pdt) => ({
  onStart: (cue) => {
    const e = s.sdk && s.sdk.entries.get(cue.id);
    s.starts.push({id: cue.id, ct: v.currentTime, start: e ? e.start : -1, pdt: pdt()});
  },
  onEnd: (cue) => s.ends.push({id: cue.id, ct: v.currentTime, start: -1, pdt: pdt()}),
});
`

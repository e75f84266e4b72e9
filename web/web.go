// Package web serves shopcast's HTML pages, the viewer's watch and replay
// pages and the seller's studio, with their assets embedded in the binary.
//
//	GET /{$}             the live streams and the past sales, with links
//	GET /watch/{name}    the player and the product carousel; "From the
//	                     start" and "Back to live" while a recording grows
//	GET /replay/{name}/{id}  a recording, the carousel following its time,
//	                     and its products as a list that seeks
//	GET /studio/{name}   the catalog, "Show now" / "Hide", the active cues
//	GET /assets/...      css, js and hls.js (versioned paths cache for a year)
//	GET /catalog.json    the product catalog the studio offers
//
// The pages read product cues only through the cue SDK,
// /sdk/shopcast-cues.js, and post them to the cue API,
// /api/v1/streams/{name}/cues; recordings come from /recordings/ and the
// recordings API, /api/v1/streams/{name}/recordings. All are served by
// other packages.
package web

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/streamname"
)

// DefaultCatalog is the demo catalog served when Config.Catalog is empty:
// a copy of testdata/catalog.json (a test keeps the two equal).
//
//go:embed catalog_default.json
var DefaultCatalog []byte

// Config configures the pages.
type Config struct {
	// Streams returns the names of the live streams, for the index page.
	// Nil lists none.
	Streams func() []string
	// Replays returns the past sales for the index page, newest first. Nil
	// lists none.
	Replays func() []Replay
	// MaxReplays is how many past sales the index page lists. It defaults
	// to 50.
	MaxReplays int
	// Catalog is the path of the product catalog JSON,
	// {"products":[{sku,title,price:{amount,currency},image_url,url,...}]},
	// read at each request so that edits show without a restart. Relative
	// image_url and url are resolved against the page by the studio. It
	// defaults to the embedded DefaultCatalog.
	Catalog string
	// ContentSteering, set when the streams have pathways (package
	// steering), makes the watch page load the full hls.js build, the one
	// with the content steering controller (191 KB gzipped where the light
	// build is 121 KB). It defaults to false: the light build.
	ContentSteering bool
	// Logger receives errors. It defaults to slog.Default().
	Logger *slog.Logger
}

// Pages serves the HTML pages and their assets.
type Pages struct {
	cfg    Config
	assets *assetSet
	tmpl   *template.Template
}

//go:embed templates
var templatesFS embedFS

// New builds the pages. It panics only if the embedded files are broken,
// which the package's tests rule out.
func New(cfg Config) *Pages {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxReplays <= 0 {
		cfg.MaxReplays = 50
	}
	p := &Pages{cfg: cfg, assets: newAssetSet()}
	p.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"asset": p.assets.url,
	}).ParseFS(templatesFS, "templates/*.html"))
	return p
}

// Register mounts the pages with handle, e.g. origin.Server.Handle or
// http.ServeMux.Handle.
func (p *Pages) Register(handle func(pattern string, h http.Handler)) {
	handle("GET /{$}", http.HandlerFunc(p.serveIndex))
	handle("GET /watch/{name}", http.HandlerFunc(p.serveWatch))
	handle("GET /replay/{name}/{id}", http.HandlerFunc(p.serveReplay))
	handle("GET /studio/{name}", http.HandlerFunc(p.serveStudio))
	handle("GET /assets/", http.HandlerFunc(p.assets.serve))
	handle("GET /catalog.json", http.HandlerFunc(p.serveCatalog))
}

type pageData struct {
	Name    string
	ID      string // a recording's, on the replay page
	Streams []string
	Replays []Replay
	// Origin is scheme://host of the request, for the absolute URLs of
	// social previews (og:image).
	Origin string
	// HLSScript is the hls.js build the watch page loads.
	HLSScript string
}

// Replay is a past sale as the index page lists it.
type Replay struct {
	Stream string
	// ID is the recording's id. It defaults to the one in URL.
	ID       string
	Start    time.Time
	Duration time.Duration
	// Products counts its product cues.
	Products int
	// URL is its multivariant playlist.
	URL string
	// Live is set while it is still being recorded.
	Live bool
}

// Page is the replay page of the recording, or "" when its id is unknown.
func (r Replay) Page() string {
	id := r.ID
	if id == "" {
		// URL is /recordings/NAME/ID/index.m3u8.
		if rest, ok := strings.CutPrefix(r.URL, "/recordings/"+r.Stream+"/"); ok {
			id, _, _ = strings.Cut(rest, "/")
		}
	}
	if !streamname.Valid(r.Stream) || !recordingID.MatchString(id) {
		return ""
	}
	return "/replay/" + r.Stream + "/" + id
}

// recordingID is what a recording id may look like on a page's path: a
// single path segment. The recorder owns the format (its UTC start); the
// recordings API answers 404 for ids it does not know.
var recordingID = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)

// When is the replay's start for the page, in UTC to the minute.
func (r Replay) When() string { return r.Start.UTC().Format("2006-01-02 15:04 UTC") }

// Length is the replay's duration for the page, to the second.
func (r Replay) Length() string { return r.Duration.Round(time.Second).String() }

func (p *Pages) serveIndex(w http.ResponseWriter, r *http.Request) {
	var names []string
	if p.cfg.Streams != nil {
		names = slices.Clone(p.cfg.Streams())
		slices.Sort(names)
	}
	var replays []Replay
	if p.cfg.Replays != nil {
		replays = p.cfg.Replays()
		if len(replays) > p.cfg.MaxReplays {
			replays = replays[:p.cfg.MaxReplays]
		}
	}
	p.render(w, r, "index.html", pageData{Streams: names, Replays: replays})
}

func (p *Pages) serveWatch(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !streamname.Valid(name) {
		http.Error(w, "invalid stream name", http.StatusNotFound)
		return
	}
	hlsScript := "vendor/hls.light.min.js"
	if p.cfg.ContentSteering {
		hlsScript = "vendor/hls.min.js"
	}
	p.render(w, r, "watch.html", pageData{Name: name, Origin: requestOrigin(r), HLSScript: hlsScript})
}

func (p *Pages) serveReplay(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("name"), r.PathValue("id")
	if !streamname.Valid(name) || !recordingID.MatchString(id) {
		http.Error(w, "invalid recording", http.StatusNotFound)
		return
	}
	p.render(w, r, "replay.html", pageData{Name: name, ID: id})
}

func (p *Pages) serveStudio(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !streamname.Valid(name) {
		http.Error(w, "invalid stream name", http.StatusNotFound)
		return
	}
	p.render(w, r, "studio.html", pageData{Name: name})
}

func (p *Pages) render(w http.ResponseWriter, r *http.Request, page string, data pageData) {
	var buf bytes.Buffer
	if err := p.tmpl.ExecuteTemplate(&buf, page, data); err != nil {
		p.cfg.Logger.Error("rendering page", "page", page, "stream", data.Name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages name versioned assets: they must not outlive a deploy.
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	_, _ = w.Write(buf.Bytes())
}

func (p *Pages) serveCatalog(w http.ResponseWriter, r *http.Request) {
	body, err := p.catalog()
	if err != nil {
		p.cfg.Logger.Error("reading catalog", "path", p.cfg.Catalog, "err", err)
		http.Error(w, "catalog unavailable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(body)
}

// Catalog is the catalog file's shape; product fields are those of a cue's
// product (docs/cues.md), kept as raw JSON so that the studio posts them as
// written.
type Catalog struct {
	Products []json.RawMessage `json:"products"`
}

func (p *Pages) catalog() ([]byte, error) {
	body := DefaultCatalog
	if p.cfg.Catalog != "" {
		b, err := os.ReadFile(p.cfg.Catalog)
		if err != nil {
			return nil, err
		}
		body = b
	}
	var c Catalog
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", p.cfg.Catalog, err)
	}
	return body, nil
}

// requestOrigin is the scheme and host the request was made to.
func requestOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

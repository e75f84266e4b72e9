package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

type embedFS = embed.FS

// assetsFS holds the css, js, images and the vendored hls.js
// (assets/vendor, copied from node_modules by `npm run vendor`).
//
//go:embed assets
var assetsFS embed.FS

// asset is one embedded file, with its gzip form when that is smaller.
type asset struct {
	body  []byte
	gz    []byte
	ctype string
	etag  string
}

// assetSet serves the assets under two paths: /assets/v/VERSION/FILE, where
// VERSION hashes every asset, cached for a year as immutable, and
// /assets/FILE, revalidated. One version for the whole set keeps relative
// ES module imports (./player.js) inside the same version.
type assetSet struct {
	files   map[string]*asset
	version string
}

func newAssetSet() *assetSet {
	s := &assetSet{files: map[string]*asset{}}
	all := sha256.New()
	err := fs.WalkDir(assetsFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assetsFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		sum := sha256.Sum256(body)
		all.Write([]byte(name))
		all.Write(sum[:])
		a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		a.ctype = mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js", ".mjs":
			a.ctype = "text/javascript; charset=utf-8"
		case ".LICENSE":
			a.ctype = "text/plain; charset=utf-8"
		}
		if a.ctype == "" {
			a.ctype = "application/octet-stream"
		}
		if gz := gzipBytes(body); len(gz) < len(body)*9/10 {
			a.gz = gz
		}
		s.files[name] = a
		return nil
	})
	if err != nil {
		panic("web: embedded assets: " + err.Error())
	}
	s.version = hex.EncodeToString(all.Sum(nil)[:6])
	return s
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// url is the versioned URL of an asset, for the templates.
func (s *assetSet) url(name string) string {
	return "/assets/v/" + s.version + "/" + name
}

func (s *assetSet) serve(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/assets/")
	versioned := false
	if rest, ok := strings.CutPrefix(name, "v/"); ok {
		ver, file, ok := strings.Cut(rest, "/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		// An old version (a page from before a deploy) gets today's file,
		// not to be cached for long.
		versioned = ver == s.version
		name = file
	}
	a, ok := s.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	if versioned {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=0, must-revalidate")
	}
	body, etag := a.body, a.etag
	if a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		// Each representation has its own entity tag (RFC 9110 8.8.3).
		h.Set("Content-Encoding", "gzip")
		body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
	}
	h.Set("ETag", etag) // ServeContent answers If-None-Match with it
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip
// (RFC 9110 12.5.3: "gzip;q=0" refuses it).
func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(coding) != "*" {
			continue
		}
		params = strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
	}
	return false
}

package recorder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shopcast/shopcast/internal/adminauth"
	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/internal/streamname"
)

// Cache-Control of recording files. A segment, an init section and a
// closed (VOD) playlist never change: a CDN keeps them for a year. A
// growing (EVENT) playlist changes with every segment.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheGrowing   = "public, max-age=1"
)

// Register mounts the recordings on an origin (origin.Server.Handle):
//
//	GET    /recordings/{name}/{id}/index.m3u8     multivariant playlist
//	GET    /recordings/{name}/{id}/stream.m3u8    media playlist (EVENT, then VOD)
//	GET    /recordings/{name}/{id}/init{N}.mp4, seg{N}.m4s
//	GET    /recordings/{name}/{id}/chapters.json, cues.json
//	GET    /recordings/{name}/{id}/clips/{cue}.mp4  one product's presentation, as a download
//	GET    /api/v1/streams/{name}/recordings      {"recordings": [...]}, newest first
//	GET    /api/v1/streams/{name}/recordings/{id} one recording
//	DELETE /api/v1/streams/{name}/recordings/{id} removes a finished recording
//
// DELETE follows the rule of every admin endpoint (package adminauth):
// the token when one is set, else direct loopback requests only.
func (r *Recorder) Register(handle func(pattern string, h http.Handler), admin adminauth.Rule) {
	handle("GET /recordings/{name}/{id}/{file}", http.HandlerFunc(r.serveFile))
	handle("GET /recordings/{name}/{id}/clips/{file}", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if dir, _, ok := r.dirOf(req); ok {
			if _, ok := r.authorizePlay(w, req); ok {
				r.serveClip(w, req, dir)
			}
			return
		}
		http.NotFound(w, req)
	}))
	handle("GET /api/v1/streams/{name}/recordings", http.HandlerFunc(r.serveList))
	handle("GET /api/v1/streams/{name}/recordings/{id}", http.HandlerFunc(r.serveOne))
	handle("DELETE /api/v1/streams/{name}/recordings/{id}", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if ref := admin.Check(req); ref != nil {
			if ref.Challenge != "" {
				w.Header().Set("WWW-Authenticate", ref.Challenge)
			}
			writeJSON(w, ref.Status, map[string]string{"error": ref.Error()})
			return
		}
		r.serveDelete(w, req)
	}))
}

// dirOf returns the directory of NAME/ID, or false when either is not a
// valid name: nothing outside Dir can be named.
func (r *Recorder) dirOf(req *http.Request) (dir, path string, ok bool) {
	name, id := req.PathValue("name"), req.PathValue("id")
	if !streamname.Valid(name) || !validID.MatchString(id) {
		return "", "", false
	}
	return filepath.Join(r.cfg.Dir, name, id), name + "/" + id, true
}

func (r *Recorder) serveFile(w http.ResponseWriter, req *http.Request) {
	dir, _, ok := r.dirOf(req)
	if !ok {
		http.NotFound(w, req)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.cfg.CORSOrigin)
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Age, Date")
	token, ok := r.authorizePlay(w, req)
	if !ok {
		return
	}
	file := req.PathValue("file")
	if file == chaptersFile || file == cuesFile {
		r.serveIndex(w, req, dir, file)
		return
	}
	name, err := hlsname.Parse(file)
	if err != nil {
		http.NotFound(w, req)
		return
	}
	switch name.Kind {
	case hlsname.KindMultivariant:
		r.serveMultivariant(w, req, dir, token)
		return
	case hlsname.KindMedia:
		h.Set("Content-Type", "application/vnd.apple.mpegurl")
	case hlsname.KindInit, hlsname.KindSegment:
		h.Set("Content-Type", "video/mp4")
		h.Set("Cache-Control", cacheImmutable)
	default:
		http.NotFound(w, req)
		return
	}
	f, err := os.Open(filepath.Join(dir, name.String()))
	if err != nil {
		h.Del("Content-Type")
		h.Del("Cache-Control")
		http.NotFound(w, req)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, req)
		return
	}
	if name.Kind == hlsname.KindMedia {
		h.Set("Cache-Control", cacheGrowing)
		if closedPlaylist(f, fi.Size()) {
			h.Set("Cache-Control", cacheImmutable)
		}
	}
	// Files are written once (a playlist is replaced by a rename, which
	// gives it a new time): size and time name the bytes.
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	if name.Kind == hlsname.KindMedia && token != "" {
		// Its URIs carry the viewer's token: the bytes differ by viewer.
		b, err := io.ReadAll(f)
		if err != nil {
			http.NotFound(w, req)
			return
		}
		h.Del("ETag")
		http.ServeContent(w, req, "", fi.ModTime(), bytes.NewReader(withToken(b, token)))
		return
	}
	// ServeContent on the file: Range and conditional requests, and
	// sendfile for the body.
	http.ServeContent(w, req, "", fi.ModTime(), f)
}

// serveIndex serves chapters.json or cues.json, which change with the
// playlist until it is closed.
func (r *Recorder) serveIndex(w http.ResponseWriter, req *http.Request, dir, file string) {
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		http.NotFound(w, req)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, req)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", cacheGrowing)
	if m, err := readManifest(dir); err == nil && m.State == StateComplete {
		h.Set("Cache-Control", cacheImmutable)
	}
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	http.ServeContent(w, req, "", fi.ModTime(), f)
}

// closedPlaylist reports whether the playlist ends with EXT-X-ENDLIST.
func closedPlaylist(f *os.File, size int64) bool {
	const tag = "#EXT-X-ENDLIST\n"
	if size < int64(len(tag)) {
		return false
	}
	b := make([]byte, len(tag))
	if _, err := f.ReadAt(b, size-int64(len(tag))); err != nil {
		return false
	}
	return string(b) == tag
}

// serveMultivariant lists the recording's one variant with the CODECS,
// RESOLUTION and BANDWIDTH its manifest measured, as live does.
func (r *Recorder) serveMultivariant(w http.ResponseWriter, req *http.Request, dir, token string) {
	m, err := readManifest(dir)
	if err != nil {
		http.NotFound(w, req)
		return
	}
	body := multivariant(m)
	if token != "" {
		body = withToken(body, token)
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.apple.mpegurl")
	h.Set("Cache-Control", cacheGrowing)
	if m.State == StateComplete {
		h.Set("Cache-Control", cacheImmutable)
	}
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, len(body), m.End.UnixNano()))
	http.ServeContent(w, req, "", m.End, bytes.NewReader(body))
}

func multivariant(m *Manifest) []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	// The products as chapters (Apple's JSON chapter format).
	b.WriteString(`#EXT-X-SESSION-DATA:DATA-ID="com.apple.hls.chapters",URI="` + chaptersFile + "\"\n")
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d", max(m.Bandwidth, 1), max(m.AverageBandwidth, 1))
	if m.Width > 0 && m.Height > 0 {
		fmt.Fprintf(&b, ",RESOLUTION=%dx%d", m.Width, m.Height)
	}
	if m.FrameRate > 0 {
		fmt.Fprintf(&b, ",FRAME-RATE=%.3f", m.FrameRate)
	}
	if len(m.Codecs) > 0 {
		fmt.Fprintf(&b, ",CODECS=\"%s\"", strings.Join(m.Codecs, ","))
	}
	b.WriteString("\n" + playlistFile + "\n")
	// The ladder, as live listed it, its figures measured as the source's.
	for _, v := range m.Variants {
		if !hlsname.ValidVariant(v.Name) || v.Playlist != hlsname.VariantMedia(v.Name) {
			continue
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d", max(v.Bandwidth, 1), max(v.AverageBandwidth, 1))
		if v.Width > 0 && v.Height > 0 {
			fmt.Fprintf(&b, ",RESOLUTION=%dx%d", v.Width, v.Height)
		}
		if v.FrameRate > 0 {
			fmt.Fprintf(&b, ",FRAME-RATE=%.3f", v.FrameRate)
		}
		if len(v.Codecs) > 0 {
			fmt.Fprintf(&b, ",CODECS=\"%s\"", strings.Join(v.Codecs, ","))
		}
		b.WriteString("\n" + v.Playlist + "\n")
	}
	return b.Bytes()
}

// Listing is how the API shows a recording: its manifest and URLs.
type Listing struct {
	*Manifest
	// URL is the multivariant playlist; Playlist the media playlist.
	URL      string `json:"url"`
	Playlist string `json:"playlist"`
}

func listing(m *Manifest) Listing {
	base := "/recordings/" + m.Stream + "/" + m.ID + "/"
	return Listing{Manifest: m, URL: m.URL(), Playlist: base + playlistFile}
}

func (r *Recorder) serveList(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	if !streamname.Valid(name) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such stream"})
		return
	}
	out := []Listing{}
	ids, _ := os.ReadDir(filepath.Join(r.cfg.Dir, name))
	for _, id := range slices.Backward(ids) {
		if !validID.MatchString(id.Name()) {
			continue
		}
		if m, err := readManifest(filepath.Join(r.cfg.Dir, name, id.Name())); err == nil {
			out = append(out, listing(m))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"recordings": out})
}

func (r *Recorder) serveOne(w http.ResponseWriter, req *http.Request) {
	dir, _, ok := r.dirOf(req)
	var m *Manifest
	var err error
	if ok {
		m, err = readManifest(dir)
	}
	if !ok || err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such recording"})
		return
	}
	writeJSON(w, http.StatusOK, listing(m))
}

func (r *Recorder) serveDelete(w http.ResponseWriter, req *http.Request) {
	dir, path, ok := r.dirOf(req)
	if ok {
		_, err := os.Stat(filepath.Join(dir, manifestFile))
		ok = err == nil
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such recording"})
		return
	}
	if r.isActive(path) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the stream is live: its recording is still being written"})
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		r.log.Warn("recording not removed", "stream", req.PathValue("name"), "id", req.PathValue("id"), "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "not removed"})
		return
	}
	r.log.Info("recording removed", "stream", req.PathValue("name"), "id", req.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

package origin

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/internal/streamname"
)

// The stream namespace is /live/{name}/{file}.
const livePrefix = "/live/"

// isLivePath says whether a request belongs to the stream files: its path
// starts with /live/ as sent, or once cleaned. The second case sends
// //live/... and /x/../live/... to serveLive, which rejects them, instead of
// letting http.ServeMux redirect them into the namespace.
func isLivePath(r *http.Request) bool {
	return strings.HasPrefix(r.URL.EscapedPath(), livePrefix) ||
		strings.HasPrefix(path.Clean(r.URL.Path), livePrefix)
}

// parseLivePath splits an escaped request path of the form
// /live/{name}/{file} and validates both parts: the stream name by
// streamname, the file by hlsname. Any other shape, an encoded slash or dot
// segment, a name outside [A-Za-z0-9_.-] or a file the packager never names
// fails: no request can name anything outside one stream's files.
func parseLivePath(escaped string) (name, file string, ok bool) {
	rest, ok := strings.CutPrefix(escaped, livePrefix)
	if !ok {
		return "", "", false
	}
	rawName, rawFile, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(rawFile, "/") {
		return "", "", false
	}
	name, err := url.PathUnescape(rawName)
	if err != nil || !streamname.Valid(name) {
		return "", "", false
	}
	file, err = url.PathUnescape(rawFile)
	if err != nil {
		return "", "", false
	}
	if _, err := hlsname.Parse(file); err != nil {
		return "", "", false
	}
	return name, file, true
}

// serveStreamFile serves a request for one of StreamFiles and reports
// whether it did.
func (s *Server) serveStreamFile(w http.ResponseWriter, r *http.Request) bool {
	return serveFileOf(s.StreamFiles, w, r)
}

// serveFileOf serves a request for /live/{name}/{file} with files[file]
// and reports whether it did.
func serveFileOf(files map[string]http.Handler, w http.ResponseWriter, r *http.Request) bool {
	if len(files) == 0 {
		return false
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), livePrefix)
	if !ok {
		return false
	}
	rawName, file, ok := strings.Cut(rest, "/")
	h := files[file]
	if !ok || h == nil {
		return false
	}
	name, err := url.PathUnescape(rawName)
	if err != nil || !streamname.Valid(name) {
		return false // a 404 from serveLive
	}
	r.SetPathValue("name", name)
	h.ServeHTTP(w, r)
	return true
}

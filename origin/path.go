package origin

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/shopcast/shopcast/internal/streamname"
)

// The stream namespace is /live/{name}/{file}.
const livePrefix = "/live/"

// maxFileInfix is the most characters between a stream file's prefix and
// its extension.
const maxFileInfix = 48

// The playlist file names.
const (
	multiPlaylist = "index.m3u8"  // multivariant playlist
	mediaPlaylist = "stream.m3u8" // media playlist, takes the delivery directives
	// The legacy HLS rendition (MPEG-TS segments segN.ts, not low-latency).
	tsMediaPlaylist = "stream_ts.m3u8"
	tsMultiPlaylist = "index_ts.m3u8"
)

// isLivePath says whether a request belongs to the stream files: its path
// starts with /live/ as sent, or once cleaned. The second case sends
// //live/... and /x/../live/... to serveLive, which rejects them, instead of
// letting http.ServeMux redirect them into the namespace.
func isLivePath(r *http.Request) bool {
	return strings.HasPrefix(r.URL.EscapedPath(), livePrefix) ||
		strings.HasPrefix(path.Clean(r.URL.Path), livePrefix)
}

// parseLivePath splits an escaped request path of the form
// /live/{name}/{file} and validates both parts. Any other shape, an
// encoded slash or dot segment, or a name outside [A-Za-z0-9_.-] fails:
// no request can name anything outside one stream's files.
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
	if err != nil || !validFile(file) {
		return "", "", false
	}
	return name, file, true
}

// validFile reports whether s is one of a stream's file names: index.m3u8,
// stream.m3u8, stream_ts.m3u8, index_ts.m3u8, init*.mp4, seg*.m4s, seg*.ts
// or part*.m4s, where * is up to 48 characters of [A-Za-z0-9_.-] without
// "..".
func validFile(s string) bool {
	switch s {
	case multiPlaylist, mediaPlaylist, tsMediaPlaylist, tsMultiPlaylist:
		return true
	}
	var infix string
	switch {
	case strings.HasPrefix(s, "init") && strings.HasSuffix(s, ".mp4"):
		infix = s[len("init") : len(s)-len(".mp4")]
	case strings.HasPrefix(s, "seg") && strings.HasSuffix(s, ".m4s"):
		infix = s[len("seg") : len(s)-len(".m4s")]
	case strings.HasPrefix(s, "seg") && strings.HasSuffix(s, ".ts"):
		infix = s[len("seg") : len(s)-len(".ts")]
	case strings.HasPrefix(s, "part") && strings.HasSuffix(s, ".m4s"):
		infix = s[len("part") : len(s)-len(".m4s")]
	default:
		return false
	}
	return len(infix) <= maxFileInfix && !strings.Contains(s, "..") && streamname.SafeChars(infix)
}

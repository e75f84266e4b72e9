package recorder

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"time"
)

// PlayVerifier checks a play token for a stream (origin.PlayAuth does:
// signed play URLs, play_secret).
type PlayVerifier interface {
	Verify(name, token string, now time.Time) (time.Time, error)
}

// playTokenQuery is the query parameter of a recording file's token, the
// one the live multivariant playlist takes.
const playTokenQuery = "token"

// authorizePlay refuses a recording file without a valid play token for
// its stream when signed play URLs are on, so that a replay is no easier
// to get than the live stream. It returns the token, for the playlists'
// URIs, and false when it answered 403.
func (r *Recorder) authorizePlay(w http.ResponseWriter, req *http.Request) (string, bool) {
	if r.cfg.PlayAuth == nil {
		return "", true
	}
	token := req.URL.Query().Get(playTokenQuery)
	if _, err := r.cfg.PlayAuth.Verify(req.PathValue("name"), token, time.Now()); err != nil {
		w.Header().Set("Cache-Control", "public, max-age=1")
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return "", false
	}
	return token, true
}

// uriLine and uriAttr find a playlist's relative URIs: the lines that are
// not tags and the URI="..." attributes.
var (
	uriLine = regexp.MustCompile(`(?m)^([^#\s][^\r\n]*)$`)
	// An attribute named URI, not one ending so (a cue's X-...-URI).
	uriAttr = regexp.MustCompile(`[:,]URI="[^"]+"`)
)

// withToken appends the play token to every URI of a playlist, so that a
// player resolving them relative to the playlist sends it along.
func withToken(body []byte, token string) []byte {
	q := []byte("?" + playTokenQuery + "=" + url.QueryEscape(token))
	body = uriLine.ReplaceAllFunc(body, func(m []byte) []byte { return append(bytes.Clone(m), q...) })
	return uriAttr.ReplaceAllFunc(body, func(m []byte) []byte {
		return append(append(bytes.Clone(m[:len(m)-1]), q...), '"')
	})
}

package origin

import (
	"net/http"
	"strings"

	"github.com/shopcast/shopcast/internal/streamname"
)

// Forwarder serves requests for streams another server owns (package
// cluster implements it by proxying to the owner). It is asked about
// every request under /live/NAME/ and /recordings/NAME/ before this
// server's own handlers.
type Forwarder interface {
	// Forward answers r and returns true when another server owns the
	// stream name, or when it must be refused here (the stream is moving
	// between servers); it returns false, having written nothing, to leave
	// r to this server.
	Forward(w http.ResponseWriter, r *http.Request, name string) bool
}

// recordingsPrefix starts the recorder's paths (package recorder).
const recordingsPrefix = "/recordings/"

// forward offers r to the Forwarder when it names a stream's files.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	rest, ok := strings.CutPrefix(p, livePrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(p, recordingsPrefix); !ok {
			return false
		}
	}
	name, _, ok := strings.Cut(rest, "/")
	// A bad name is this server's 404 (or 400) to give.
	if !ok || !streamname.Valid(name) {
		return false
	}
	return s.Forwarder.Forward(w, r, name)
}

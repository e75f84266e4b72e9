package cues

import (
	"net/http"
	"strings"
)

// CueObserver is told how each cue POST ended, for metrics. Its methods are
// called on the request's goroutine and must be safe for concurrent use.
type CueObserver interface {
	// CuePosted is called when a cue was placed in stream (201).
	CuePosted(stream string)
	// CueRejected is called when a POST was refused, with one of the
	// Reject* reasons.
	CueRejected(reason string)
}

// Reasons a cue POST is rejected, a bounded set for metric labels.
const (
	RejectUnauthorized  = "unauthorized"   // 401, 403: no or wrong token, or not loopback
	RejectUnknownStream = "unknown_stream" // 404
	RejectRateLimited   = "rate_limited"   // 429
	RejectTooLarge      = "too_large"      // 413: over MaxCueBytes
	RejectInvalid       = "invalid"        // 400: not a valid cue
	RejectIDUsed        = "id_used"        // 409
	RejectInternal      = "internal"       // 5xx
	RejectOther         = "other"
)

// observePost returns w, wrapped to tell the Observer the outcome when r
// posts a cue (POST /api/v1/streams/{name}/cues).
func (a *API) observePost(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if a.Observer == nil || r.Method != http.MethodPost {
		return w
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/streams/")
	if !ok {
		return w
	}
	stream, ok := strings.CutSuffix(rest, "/cues")
	if !ok || stream == "" || strings.Contains(stream, "/") {
		return w
	}
	return &postObserver{ResponseWriter: w, obs: a.Observer, stream: stream}
}

// postObserver reports the status of a cue POST when it is written.
type postObserver struct {
	http.ResponseWriter
	obs    CueObserver
	stream string
	done   bool
}

func (w *postObserver) WriteHeader(code int) {
	if !w.done {
		w.done = true
		if code == http.StatusCreated || code == http.StatusAccepted {
			w.obs.CuePosted(w.stream)
		} else {
			w.obs.CueRejected(rejectReason(code))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *postObserver) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *postObserver) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// rejectReason maps the status of a refused POST to its reason.
func rejectReason(status int) string {
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return RejectUnauthorized
	case status == http.StatusNotFound:
		return RejectUnknownStream
	case status == http.StatusTooManyRequests:
		return RejectRateLimited
	case status == http.StatusRequestEntityTooLarge:
		return RejectTooLarge
	case status == http.StatusBadRequest:
		return RejectInvalid
	case status == http.StatusConflict:
		return RejectIDUsed
	case status >= 500:
		return RejectInternal
	}
	return RejectOther
}

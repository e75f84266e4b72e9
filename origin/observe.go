package origin

import (
	"net/http"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/hlsname"
)

// Observer is told about every answered request for stream files, for
// metrics. ObserveLive is called on the request's goroutine once the handler
// returned; it must be fast and safe for concurrent use.
type Observer interface {
	ObserveLive(r *http.Request, lr LiveRequest)
}

// LiveRequest describes one answered request under /live/.
type LiveRequest struct {
	// Stream is the stream name as the path gives it (not validated: the
	// path may have been refused); File is the file name, the path's last
	// element.
	Stream, File string
	// Kind is what was asked for.
	Kind RequestKind
	// Status is the HTTP status sent, 0 when the client went away before an
	// answer (a blocked request cancelled).
	Status int
	// Duration is how long the request took, blocking included.
	Duration time.Duration
}

// RequestKind classifies requests for stream files, a bounded set for
// metric labels.
type RequestKind string

// Request kinds. A media playlist request with _HLS_msn is blocking (RFC
// 8216bis 6.2.5.2), one with _HLS_skip is a delta update (6.2.5.1); a
// request with both is blocking_delta.
const (
	KindMultivariant  RequestKind = "multivariant"
	KindPlain         RequestKind = "plain"
	KindBlocking      RequestKind = "blocking"
	KindDelta         RequestKind = "delta"
	KindBlockingDelta RequestKind = "blocking_delta"
	KindInit          RequestKind = "init"
	KindSegment       RequestKind = "segment"
	KindPart          RequestKind = "part"
	KindOther         RequestKind = "other"
)

// IsPlaylist reports whether k is a playlist kind.
func (k RequestKind) IsPlaylist() bool {
	switch k {
	case KindMultivariant, KindPlain, KindBlocking, KindDelta, KindBlockingDelta:
		return true
	}
	return false
}

// observeLive runs serveLive and tells the Observer how the request was
// answered.
func (s *Server) observeLive(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	s.serveLive(sw, r)
	lr := classifyLive(r.URL.Path, r.URL.RawQuery)
	lr.Status, lr.Duration = sw.status, time.Since(start)
	s.Observer.ObserveLive(r, lr)
}

// classifyLive reads the stream name and file of a path under /live/: the
// name is the first element after /live/ and the file the last, in
// /live/{name}/{file} as in the token-scoped /live/{name}/t/{token}/{file}.
func classifyLive(path, rawQuery string) LiveRequest {
	rest, _ := strings.CutPrefix(path, livePrefix)
	name, _, _ := strings.Cut(rest, "/")
	file := rest[strings.LastIndexByte(rest, '/')+1:]
	lr := LiveRequest{Stream: name, File: file, Kind: KindOther}
	f, err := hlsname.Parse(file)
	if err != nil {
		return lr
	}
	switch f.Kind {
	case hlsname.KindMultivariant, hlsname.KindTSMultivariant:
		lr.Kind = KindMultivariant
	case hlsname.KindMedia:
		blocking, delta := hasQueryKey(rawQuery, queryMSN), hasQueryKey(rawQuery, querySkip)
		switch {
		case blocking && delta:
			lr.Kind = KindBlockingDelta
		case blocking:
			lr.Kind = KindBlocking
		case delta:
			lr.Kind = KindDelta
		default:
			lr.Kind = KindPlain
		}
	case hlsname.KindTSMedia:
		lr.Kind = KindPlain // the TS rendition takes no directives
	case hlsname.KindInit:
		lr.Kind = KindInit
	case hlsname.KindSegment, hlsname.KindTSSegment:
		lr.Kind = KindSegment
	case hlsname.KindPart:
		lr.Kind = KindPart
	}
	return lr
}

// hasQueryKey reports whether a raw query has the parameter key, without
// decoding the query (the delivery directives are plain ASCII).
func hasQueryKey(rawQuery, key string) bool {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

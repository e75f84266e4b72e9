package packager

import (
	"errors"
	"time"
)

// Errors returned by Fetch. The origin maps them to HTTP statuses.
var (
	// ErrNotFound means the stream or the file does not exist (any more). 404.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest means a blocking-reload or delta-update parameter is out
	// of the range RFC 8216bis allows. 400.
	ErrBadRequest = errors.New("bad request")
	// ErrUnavailable means a blocking request waited longer than the spec
	// allows (3x target duration) or the server is at its limit of blocked
	// requests. 503.
	ErrUnavailable = errors.New("unavailable")
)

// Skip is the _HLS_skip delivery directive.
type Skip int

// Skip values.
const (
	SkipNone Skip = iota // no _HLS_skip
	SkipYes              // _HLS_skip=YES: skip old segments
	SkipV2               // _HLS_skip=v2: skip old segments and date ranges
)

// Request asks for one file of one stream.
type Request struct {
	// Stream is the public stream name.
	Stream string
	// File is the file name relative to the stream's directory, one of
	// the names of package hlsname, such as "index.m3u8", "init0.mp4",
	// "seg12.m4s" or "part40.m4s".
	File string
	// MSN and Part are the _HLS_msn and _HLS_part directives, -1 when absent.
	MSN  int64
	Part int64
	// Skip is the _HLS_skip directive.
	Skip Skip
	// Client identifies the requesting client (its IP address) for the
	// per-client cap on blocked requests; empty counts against no client.
	Client string
	// Gzip says the client accepts a gzip-compressed playlist: only then
	// is a playlist version compressed (once, for every such client).
	Gzip bool
}

// Kind says what a Response holds, which decides its caching.
type Kind int

// Kinds of response.
const (
	KindMultivariant     Kind = iota // index.m3u8
	KindPlaylist                     // media playlist, non-blocking request
	KindBlockingPlaylist             // media playlist answering _HLS_msn
	KindInit                         // init segment (EXT-X-MAP)
	KindPart                         // partial segment
	KindSegment                      // full segment
)

// Response is one file, ready to send. Body and Gzip are shared by every
// viewer and must not be modified.
type Response struct {
	Kind Kind
	// ContentType is the file's media type, always set: the origin sends
	// it as is.
	ContentType string
	Body        []byte
	// Gzip is Body compressed with gzip, for playlists; nil otherwise.
	Gzip []byte
	// TargetDuration is the stream's EXT-X-TARGETDURATION, which sets the
	// cache lifetimes of RFC 8216bis appendix B.
	TargetDuration time.Duration
	// Ended is true once the playlist carries EXT-X-ENDLIST.
	Ended bool
	// ModTime is when the file was produced.
	ModTime time.Time

	// playlist is the rendering whose bytes Fetch puts into Body (and
	// Gzip), outside the stream lock, running build first when this
	// request is the one to make them.
	playlist *rendered
	build    func()
}

package packager

import (
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// part is a partial segment. Its bytes are immutable once published and
// shared by every viewer, and the parent segment carries the same bytes;
// when the segment completes, body is re-pointed at them (under the stream
// lock, like every read of body).
type part struct {
	n           int64 // global part number: the file is partN.m4s
	index       int   // position within its segment
	body        []byte
	dur         time.Duration
	independent bool
	at          time.Time
	gap         bool // a variant's part it has no media for: GAP=YES

	// What a variant's part of the same number carries besides its own
	// video (variant.go), on the source's parts only: the publication, the
	// media time range [from, to) of its lead track, its segment, the
	// samples of its other tracks and its emsg boxes. shared and boxes are
	// let go when the part's bytes are.
	pub      *publication
	from, to time.Duration
	seg      *segment
	shared   []*fmp4.PartTrack
	boxes    []byte
}

// segment is a media segment: a run of parts starting on a keyframe.
type segment struct {
	msn   int64
	start time.Duration // media time of its first sample
	pdt   time.Time     // EXT-X-PROGRAM-DATE-TIME
	dur   time.Duration
	// media is the span of its lead track's samples, where the aligned
	// timeline's dur is the grid's.
	media time.Duration
	parts []*part
	init  *initFile
	disc  bool // EXT-X-DISCONTINUITY before it
	// discNum is its discontinuity sequence number (RFC 8216bis 4.4.3.3).
	discNum int64
	frames  int // lead track frames, for FRAME-RATE

	complete bool
	gap      bool   // a variant's segment it could not fill: EXT-X-GAP
	body     []byte // the parts' bytes back to back, set when complete
	at       time.Time
	size     int
}

// initFile is an fMP4 initialization segment (EXT-X-MAP).
type initFile struct {
	name   string
	body   []byte
	at     time.Time
	codecs []codecs.Codec
	// variant is the variant whose init segment it is, nil for the source.
	variant *variant
}

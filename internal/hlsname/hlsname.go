// Package hlsname is the one place that knows the names of a stream's files
// under /live/{name}/: the playlists, init segments, segments and parts. The
// packager formats them into its playlists and parses them back from
// requests; the origin's router parses them to refuse anything else before
// asking the packager.
//
// The names are
//
//	index.m3u8        multivariant playlist
//	stream.m3u8       media playlist (LL-HLS, takes the delivery directives)
//	index_ts.m3u8     multivariant playlist of the MPEG-TS rendition
//	stream_ts.m3u8    media playlist of the MPEG-TS rendition
//	init{N}.mp4       init segment of the stream's Nth publication
//	seg{N}.m4s        fMP4 segment with media sequence number N
//	part{N}.m4s       partial segment N, numbered across the stream
//	seg{N}.ts         MPEG-TS segment with media sequence number N
//	poster.jpg        the latest picture of the stream (package ladder)
//
// where N is a decimal number within int64. Those are the source
// rendition's names: the publisher's own picture. A stream with an
// adaptive bitrate ladder has more renditions (variants), each named like
// 480p, whose files are the source's names behind the variant's name and a
// dot:
//
//	480p.stream.m3u8  media playlist of variant 480p
//	480p.init{N}.mp4  its init segments
//	480p.seg{N}.m4s   its segment with media sequence number N
//	480p.part{N}.m4s  its part N, covering the same media time as part{N}.m4s
//
// The source's names stay as they were, so a URL served before the ladder
// existed names the same file, and a name parses one way only: a variant
// name has no dot, and every source name has exactly one.
package hlsname

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxVariantLen is the longest variant name.
const MaxVariantLen = 16

// ValidVariant reports whether v can name a variant:
// ^[a-z0-9][a-z0-9_-]{0,15}$, so that it is safe in a URL, a file name and a
// metric label as it is.
func ValidVariant(v string) bool {
	if v == "" || len(v) > MaxVariantLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ErrBadVariant is what CheckVariant wraps.
var ErrBadVariant = errors.New("invalid variant name")

// CheckVariant returns an error wrapping ErrBadVariant, naming the rule,
// when v cannot name a variant.
func CheckVariant(v string) error {
	if !ValidVariant(v) {
		return fmt.Errorf("%w %q: want 1 to %d of a-z, 0-9, _ and -, starting with a letter or digit", ErrBadVariant, v, MaxVariantLen)
	}
	return nil
}

// The playlists' names.
const (
	Multivariant   = "index.m3u8"
	Media          = "stream.m3u8"
	TSMultivariant = "index_ts.m3u8"
	TSMedia        = "stream_ts.m3u8"
	Poster         = "poster.jpg"
)

// Kind is what a file is.
type Kind uint8

// Kinds of file. The zero Kind is no file.
const (
	KindMultivariant   Kind = iota + 1 // index.m3u8
	KindMedia                          // stream.m3u8
	KindTSMultivariant                 // index_ts.m3u8
	KindTSMedia                        // stream_ts.m3u8
	KindInit                           // init{N}.mp4
	KindSegment                        // seg{N}.m4s
	KindPart                           // part{N}.m4s
	KindTSSegment                      // seg{N}.ts
	KindPoster                         // poster.jpg
)

// numbered are the name forms that carry a number, by Kind.
var numbered = [...]struct{ prefix, suffix string }{
	KindInit:      {"init", ".mp4"},
	KindSegment:   {"seg", ".m4s"},
	KindPart:      {"part", ".m4s"},
	KindTSSegment: {"seg", ".ts"},
}

// String returns the kind's name form, such as "seg{N}.m4s".
func (k Kind) String() string {
	switch k {
	case KindMultivariant:
		return Multivariant
	case KindMedia:
		return Media
	case KindTSMultivariant:
		return TSMultivariant
	case KindTSMedia:
		return TSMedia
	case KindPoster:
		return Poster
	case KindInit, KindSegment, KindPart, KindTSSegment:
		return numbered[k].prefix + "{N}" + numbered[k].suffix
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// IsPlaylist reports whether k is one of the playlists.
func (k Kind) IsPlaylist() bool {
	return k >= KindMultivariant && k <= KindTSMedia
}

// IsTS reports whether k belongs to the MPEG-TS rendition.
func (k Kind) IsTS() bool {
	return k == KindTSMultivariant || k == KindTSMedia || k == KindTSSegment
}

// Name is a parsed file name.
type Name struct {
	Kind Kind
	// N is the number in the name: the publication of an init segment,
	// the media sequence number of a segment, the part number of a part.
	// It is 0 for the playlists.
	N int64
	// Variant is the variant the file belongs to, "" for the source
	// rendition. Only a media playlist, an init segment, a segment or a
	// part belongs to a variant.
	Variant string
}

// variantKind reports whether a variant has files of kind k.
func variantKind(k Kind) bool {
	return k == KindMedia || k == KindInit || k == KindSegment || k == KindPart
}

// String returns the file name. Parse(n.String()) is n for every valid n.
func (n Name) String() string {
	var base string
	switch n.Kind {
	case KindInit, KindSegment, KindPart, KindTSSegment:
		f := numbered[n.Kind]
		base = f.prefix + strconv.FormatInt(n.N, 10) + f.suffix
	default:
		base = n.Kind.String()
	}
	if n.Variant != "" {
		return n.Variant + "." + base
	}
	return base
}

// Init returns the name of the init segment of publication seq.
func Init(seq int64) string { return Name{Kind: KindInit, N: seq}.String() }

// Segment returns the name of the fMP4 segment msn.
func Segment(msn int64) string { return Name{Kind: KindSegment, N: msn}.String() }

// Part returns the name of part n.
func Part(n int64) string { return Name{Kind: KindPart, N: n}.String() }

// TSSegment returns the name of the MPEG-TS segment msn.
func TSSegment(msn int64) string { return Name{Kind: KindTSSegment, N: msn}.String() }

// VariantMedia returns the name of variant v's media playlist; for v ""
// the source's, stream.m3u8.
func VariantMedia(v string) string { return Name{Kind: KindMedia, Variant: v}.String() }

// VariantInit returns the name of variant v's init segment seq.
func VariantInit(v string, seq int64) string {
	return Name{Kind: KindInit, N: seq, Variant: v}.String()
}

// VariantSegment returns the name of variant v's segment msn.
func VariantSegment(v string, msn int64) string {
	return Name{Kind: KindSegment, N: msn, Variant: v}.String()
}

// VariantPart returns the name of variant v's part n.
func VariantPart(v string, n int64) string {
	return Name{Kind: KindPart, N: n, Variant: v}.String()
}

// ErrInvalid is what Parse wraps for a name that is none of a stream's
// files.
var ErrInvalid = errors.New("not a stream file name")

// maxDigits bounds N's digits. It is more than int64 needs because leading
// zeros are accepted (see Parse); 48 is what the origin allowed between a
// name's prefix and suffix before this package, so no name it served before
// is refused now.
const maxDigits = 48

// Parse returns the file a name refers to. N is ASCII digits only: no sign,
// no space, within int64. Leading zeros are accepted (seg012.m4s is
// seg12.m4s), as they always were; the playlists never write them. Any other
// name, a path with a slash or a dot segment among them, is an error
// wrapping ErrInvalid.
func Parse(file string) (Name, error) {
	// A variant's file: the variant's name (no dot) and a source name,
	// which has a dot of its own.
	v, base, _ := strings.Cut(file, ".")
	if !strings.Contains(base, ".") {
		return parseBase(file)
	}
	if !ValidVariant(v) {
		return Name{}, fmt.Errorf("%w: %q", ErrInvalid, file)
	}
	n, err := parseBase(base)
	if err != nil {
		return Name{}, err
	}
	if !variantKind(n.Kind) {
		return Name{}, fmt.Errorf("%w: %q: variants have no such file", ErrInvalid, file)
	}
	n.Variant = v
	return n, nil
}

// parseBase parses a source rendition's file name.
func parseBase(file string) (Name, error) {
	switch file {
	case Multivariant:
		return Name{Kind: KindMultivariant}, nil
	case Media:
		return Name{Kind: KindMedia}, nil
	case TSMultivariant:
		return Name{Kind: KindTSMultivariant}, nil
	case TSMedia:
		return Name{Kind: KindTSMedia}, nil
	case Poster:
		return Name{Kind: KindPoster}, nil
	}
	for k := KindInit; k <= KindTSSegment; k++ {
		f := numbered[k]
		digits, ok := strings.CutPrefix(file, f.prefix)
		if !ok {
			continue
		}
		if digits, ok = strings.CutSuffix(digits, f.suffix); !ok {
			continue
		}
		n, ok := parseNumber(digits)
		if !ok {
			return Name{}, fmt.Errorf("%w: %q: the number is not a decimal within int64", ErrInvalid, file)
		}
		return Name{Kind: k, N: n}, nil
	}
	return Name{}, fmt.Errorf("%w: %q", ErrInvalid, file)
}

// parseNumber parses 1 to maxDigits ASCII digits within int64. Unlike
// strconv.ParseInt it refuses a sign, so "-0" is not 0.
func parseNumber(s string) (int64, bool) {
	if s == "" || len(s) > maxDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false // overflows int64
		}
		n = n*10 + d
	}
	return n, true
}

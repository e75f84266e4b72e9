package ingest

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// codecName names a track's codec, as the packager gets it, for the log
// lines of every protocol. rtmpCodecName names gortmplib's codecs before
// conversion instead: it must also name those the packager never gets.
func codecName(c codecs.Codec) string {
	switch c.(type) {
	case *codecs.H264:
		return "H264"
	case *codecs.H265:
		return "H265"
	case *codecs.AV1:
		return "AV1"
	case *codecs.VP9:
		return "VP9"
	case *codecs.MPEG4Audio:
		return "AAC"
	case *codecs.Opus:
		return "Opus"
	default:
		return fmt.Sprintf("%T", c)
	}
}

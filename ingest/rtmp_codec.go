package ingest

import (
	"errors"
	"fmt"

	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// ErrUnsupportedCodec is returned when a publisher sends a codec that the
// packager cannot put in fMP4 for browsers (MPEG-1 audio, AC-3, G.711, LPCM,
// FLAC, ...). The publisher is refused; the error names the codec.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// rtmpCodecName names a gortmplib codec for log lines and errors. It stays
// apart from codecName, which names the converted codecs: it runs before
// conversion and must name the codecs the packager refuses (MP3, AC-3,
// G.711, LPCM, FLAC), which have no converted form.
func rtmpCodecName(c rtmpcodecs.Codec) string {
	switch c := c.(type) {
	case *rtmpcodecs.H264:
		return "H264"
	case *rtmpcodecs.H265:
		return "H265"
	case *rtmpcodecs.AV1:
		return "AV1"
	case *rtmpcodecs.VP9:
		return "VP9"
	case *rtmpcodecs.MPEG4Audio:
		return "MPEG-4 Audio (AAC)"
	case *rtmpcodecs.Opus:
		return "Opus"
	case *rtmpcodecs.MPEG1Audio:
		return "MPEG-1 Audio (MP3)"
	case *rtmpcodecs.AC3:
		return "AC-3"
	case *rtmpcodecs.G711:
		if c.MULaw {
			return "G.711 mu-law"
		}
		return "G.711 A-law"
	case *rtmpcodecs.LPCM:
		return "LPCM"
	case *rtmpcodecs.FLAC:
		return "FLAC"
	default:
		return fmt.Sprintf("%T", c)
	}
}

// convertRTMPCodec turns a codec detected by gortmplib into the fMP4 codec of
// an ingest.Track. probe supplies the AV1 and VP9 parameters gortmplib does
// not keep.
func convertRTMPCodec(c rtmpcodecs.Codec, probe *rtmpProbe) (codecs.Codec, error) {
	switch c := c.(type) {
	case *rtmpcodecs.H264:
		if len(c.SPS) == 0 || len(c.PPS) == 0 {
			return nil, fmt.Errorf("H264 without SPS or PPS")
		}
		return &codecs.H264{SPS: c.SPS, PPS: c.PPS}, nil

	case *rtmpcodecs.H265:
		if len(c.VPS) == 0 || len(c.SPS) == 0 || len(c.PPS) == 0 {
			return nil, fmt.Errorf("H265 without VPS, SPS or PPS")
		}
		return &codecs.H265{VPS: c.VPS, SPS: c.SPS, PPS: c.PPS}, nil

	case *rtmpcodecs.AV1:
		sh := probe.av1()
		if sh == nil {
			return nil, fmt.Errorf("AV1 without a sequence header in its first 2s")
		}
		return &codecs.AV1{SequenceHeader: sh}, nil

	case *rtmpcodecs.VP9:
		h := probe.vp9()
		if h == nil {
			return nil, fmt.Errorf("VP9 without a key frame in its first 2s")
		}
		return &codecs.VP9{
			Width:             h.Width(),
			Height:            h.Height(),
			Profile:           h.Profile,
			BitDepth:          h.ColorConfig.BitDepth,
			ChromaSubsampling: h.ChromaSubsampling(),
			ColorRange:        h.ColorConfig.ColorRange,
		}, nil

	case *rtmpcodecs.MPEG4Audio:
		if c.Config == nil {
			return nil, fmt.Errorf("AAC without AudioSpecificConfig")
		}
		return &codecs.MPEG4Audio{Config: *c.Config}, nil

	case *rtmpcodecs.Opus:
		channels := 2
		if c.IDHeader != nil && c.IDHeader.ChannelCount != 0 {
			channels = int(c.IDHeader.ChannelCount)
		}
		return &codecs.Opus{ChannelCount: channels}, nil

	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, rtmpCodecName(c))
	}
}

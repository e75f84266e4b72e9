package packager

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/bluenviron/gohlslib/v2/pkg/codecparams"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/internal/hlsname"
)

// codecString returns the RFC 6381 CODECS value of a codec, from its actual
// parameters (SPS, sequence header, AudioSpecificConfig).
func codecString(c codecs.Codec) string {
	var hc hlscodecs.Codec
	switch c := c.(type) {
	case *codecs.H264:
		hc = &hlscodecs.H264{SPS: c.SPS, PPS: c.PPS}
	case *codecs.H265:
		hc = &hlscodecs.H265{VPS: c.VPS, SPS: c.SPS, PPS: c.PPS}
	case *codecs.AV1:
		hc = &hlscodecs.AV1{SequenceHeader: c.SequenceHeader}
	case *codecs.VP9:
		return vp9CodecString(c) // the level as the init segment's vpcC declares it
	case *codecs.MPEG4Audio:
		hc = &hlscodecs.MPEG4Audio{Config: c.Config}
	case *codecs.Opus:
		hc = &hlscodecs.Opus{ChannelCount: c.ChannelCount}
	default:
		return ""
	}
	return codecparams.Marshal(hc)
}

// resolution returns the picture size a video codec's parameters declare.
func resolution(c codecs.Codec) (w, h int) {
	switch c := c.(type) {
	case *codecs.H264:
		var sps h264.SPS
		if sps.Unmarshal(c.SPS) == nil {
			return sps.Width(), sps.Height()
		}
	case *codecs.H265:
		var sps h265.SPS
		if sps.Unmarshal(c.SPS) == nil {
			return sps.Width(), sps.Height()
		}
	case *codecs.AV1:
		var sh av1.SequenceHeader
		if sh.Unmarshal(c.SequenceHeader) == nil {
			return sh.Width(), sh.Height()
		}
	case *codecs.VP9:
		return c.Width, c.Height
	}
	return 0, 0
}

// renderMultivariant writes the multivariant playlist: one variant per
// rendition, the source first, then the ladder's by picture height, each
// with BANDWIDTH and AVERAGE-BANDWIDTH measured over its segments in the
// window (RFC 8216bis 4.4.6.2: peak and average segment bit rate). Every
// rendition muxes the source's audio into its parts (see doc.go), so none
// needs an EXT-X-MEDIA group. Called with s.mu held.
func (s *Stream) renderMultivariant() []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	var init *initFile
	if win := s.window(); len(win) > 0 {
		init = win[len(win)-1].init
	}
	if s.pub != nil {
		init = s.pub.init
	}
	streamInf(&b, s.window(), init, hlsname.Media)
	for _, v := range s.ladder() {
		streamInf(&b, s.windowOf(&v.rendition), v.pub.init, hlsname.VariantMedia(v.name))
	}
	return b.Bytes()
}

// ladder returns the variants the multivariant playlist lists: those fed
// by a publisher that published a complete segment in the window, highest
// picture first. Called with s.mu held.
func (s *Stream) ladder() []*variant {
	var out []*variant
	for _, v := range s.variants {
		if v.pub != nil && v.pub.joined && slices.ContainsFunc(s.windowOf(&v.rendition), func(seg *segment) bool { return !seg.gap }) {
			out = append(out, v)
		}
	}
	slices.SortStableFunc(out, func(a, b *variant) int {
		_, ha := resolution(a.pub.in.Codec)
		_, hb := resolution(b.pub.in.Codec)
		if ha != hb {
			return hb - ha
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// streamInf writes the EXT-X-STREAM-INF of a rendition whose window is win
// and whose current init segment is init.
func streamInf(b *bytes.Buffer, win []*segment, init *initFile, uri string) {
	var peak, total float64
	var dur float64
	frames := 0
	for _, seg := range win {
		d := seg.dur.Seconds()
		if d <= 0 || seg.gap {
			continue
		}
		if r := float64(seg.size*8) / d; r > peak {
			peak = r
		}
		total += float64(seg.size * 8)
		dur += d
		frames += seg.frames
	}
	avg := peak
	if dur > 0 {
		avg = total / dur
	}
	fmt.Fprintf(b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d", int64(peak), int64(avg))
	if init != nil {
		var cs []string
		video := false
		for _, c := range init.codecs {
			if v := codecString(c); v != "" {
				cs = append(cs, v)
			}
			if c.IsVideo() && !video {
				video = true
				if w, h := resolution(c); w > 0 && h > 0 {
					fmt.Fprintf(b, ",RESOLUTION=%dx%d", w, h)
				}
				if dur > 0 && frames > 0 {
					fmt.Fprintf(b, ",FRAME-RATE=%.3f", float64(frames)/dur)
				}
			}
		}
		fmt.Fprintf(b, ",CODECS=\"%s\"", strings.Join(cs, ","))
	}
	b.WriteString("\n" + uri + "\n")
}

package ingest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// setupTracks turns the tracks gortmplib found into ingest tracks (IDs 1..,
// video first) and registers the Reader callbacks that write their units.
// The source publication takes the first audio track and the video track
// with the largest picture (the first of equals). Every other H.264 or
// H.265 video track of an Enhanced RTMP multitrack connection (OBS's
// Enhanced Broadcasting sends its ladder so) becomes a variant, named from
// its picture height ("480p", "480p-2" for a second of that height),
// returned in variants; further tracks are logged and ignored.
func (c *rtmpConn) setupTracks(r *gortmplib.Reader, probe *rtmpProbe) (tracks []*Track, variants []*rtmpVariant, err error) {
	var video, audio *gortmplib.Track
	var videoCodec codecs.Codec
	type candidate struct {
		t     *gortmplib.Track
		codec codecs.Codec
	}
	var others []candidate
	for _, t := range r.Tracks() {
		switch {
		case t.Codec.IsVideo():
			codec, cerr := convertRTMPCodec(t.Codec, probe)
			if cerr != nil {
				if video == nil && len(others) == 0 {
					return nil, nil, cerr
				}
				c.log.Info("ignoring extra video track", "codec", rtmpCodecName(t.Codec), "err", cerr)
				ignoreRTMPTrack(r, t)
				continue
			}
			if video == nil {
				video, videoCodec = t, codec
				continue
			}
			if pictureHeight(codec) > pictureHeight(videoCodec) {
				others = append(others, candidate{video, videoCodec})
				video, videoCodec = t, codec
				continue
			}
			others = append(others, candidate{t, codec})
		case audio == nil:
			audio = t
		default:
			c.log.Info("ignoring extra track", "codec", rtmpCodecName(t.Codec))
			ignoreRTMPTrack(r, t)
		}
	}

	if video != nil {
		track := &Track{ID: 1, Codec: videoCodec}
		tracks = append(tracks, track)
		c.onData(r, video, track)
	}
	if audio != nil {
		codec, err := convertRTMPCodec(audio.Codec, probe)
		if err != nil {
			return nil, nil, err
		}
		track := &Track{ID: len(tracks) + 1, Codec: codec}
		tracks = append(tracks, track)
		c.onData(r, audio, track)
	}
	if len(tracks) == 0 {
		return nil, nil, fmt.Errorf("no tracks")
	}

	used := map[string]bool{}
	for _, o := range others {
		switch o.codec.(type) {
		case *codecs.H264, *codecs.H265:
		default:
			// The probe keeps one AV1 or VP9 configuration, the source's.
			c.log.Info("ignoring extra video track: variants are H.264 or H.265", "codec", rtmpCodecName(o.t.Codec))
			ignoreRTMPTrack(r, o.t)
			continue
		}
		name := variantName(pictureHeight(o.codec), used)
		track := &Track{ID: 1, Codec: o.codec}
		variants = append(variants, &rtmpVariant{name: name, track: track})
		c.onData(r, o.t, track)
	}
	return tracks, variants, nil
}

// rtmpVariant is a video track of a multitrack connection published as a
// variant of the stream.
type rtmpVariant struct {
	name  string
	track *Track
	pub   Publication // nil once it failed: its units are dropped
}

// variantName names a variant from its picture height, unique among used.
func variantName(height int, used map[string]bool) string {
	base := "video"
	if height > 0 {
		base = strconv.Itoa(height) + "p"
	}
	name := base
	for n := 2; used[name]; n++ {
		name = base + "-" + strconv.Itoa(n)
	}
	used[name] = true
	return name
}

// pictureHeight returns the picture height a video codec's parameters
// declare, 0 when they do not parse.
func pictureHeight(c codecs.Codec) int {
	switch c := c.(type) {
	case *codecs.H264:
		var sps h264.SPS
		if sps.Unmarshal(c.SPS) == nil {
			return sps.Height()
		}
	case *codecs.H265:
		var sps h265.SPS
		if sps.Unmarshal(c.SPS) == nil {
			return sps.Height()
		}
	case *codecs.AV1:
		var sh av1.SequenceHeader
		if sh.Unmarshal(c.SequenceHeader) == nil {
			return sh.Height()
		}
	case *codecs.VP9:
		return c.Height
	}
	return 0
}

// onData registers the callback that turns gortmplib's data of t into units
// of track. RTMP timestamps are milliseconds; gortmplib gives them as
// durations, and PTS = DTS + composition time offset for H.264/H.265
// B-frames. They are passed through unchanged.
func (c *rtmpConn) onData(r *gortmplib.Reader, t *gortmplib.Track, track *Track) {
	switch codec := track.Codec.(type) {
	case *codecs.H264:
		ps := &paramSets{isParam: isH264ParamSet, current: [][]byte{codec.SPS, codec.PPS}}
		r.OnDataH264(t, func(pts, dts time.Duration, au [][]byte) {
			if au = ps.filter(au); au != nil {
				c.writeUnit(&Unit{Track: track, PTS: pts, DTS: dts, AU: au})
			}
		})

	case *codecs.H265:
		ps := &paramSets{isParam: isH265ParamSet, current: [][]byte{codec.VPS, codec.SPS, codec.PPS}}
		r.OnDataH265(t, func(pts, dts time.Duration, au [][]byte) {
			if au = ps.filter(au); au != nil {
				c.writeUnit(&Unit{Track: track, PTS: pts, DTS: dts, AU: au})
			}
		})

	case *codecs.AV1:
		r.OnDataAV1(t, func(pts time.Duration, tu [][]byte) {
			c.writeUnit(&Unit{Track: track, PTS: pts, DTS: pts, AU: tu})
		})

	case *codecs.VP9:
		r.OnDataVP9(t, func(pts time.Duration, frame []byte) {
			c.writeUnit(&Unit{Track: track, PTS: pts, DTS: pts, AU: [][]byte{frame}})
		})

	case *codecs.MPEG4Audio:
		r.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) {
			c.writeUnit(&Unit{Track: track, PTS: pts, DTS: pts, Frame: au})
		})

	case *codecs.Opus:
		r.OnDataOpus(t, func(pts time.Duration, packet []byte) {
			c.writeUnit(&Unit{Track: track, PTS: pts, DTS: pts, Frame: packet})
		})
	}
}

// writeUnit hands a unit to the publication. A Sink error ends the
// connection after the current message.
func (c *rtmpConn) writeUnit(u *Unit) {
	if c.writeErr != nil {
		return
	}
	w := c.walls[u.Track]
	if w == nil {
		if c.walls == nil {
			c.walls = map[*Track]*wallClock{}
		}
		seed := c.probe.audioWall
		if u.Track.Codec.IsVideo() {
			seed = c.probe.videoWall
		}
		w = &seed
		c.walls[u.Track] = w
	}
	u.Wall = w.date(u.PTS, u.DTS, time.Now())
	if v := c.variantOf(u.Track); v != nil {
		// A variant that fails is dropped; the source and the other
		// variants go on.
		if v.pub == nil {
			return
		}
		if err := v.pub.WriteUnit(u); err != nil {
			c.log.Warn("variant stopped", "variant", v.name, "err", err)
			v.pub.Close()
			v.pub = nil
		}
		return
	}
	if err := c.pub.WriteUnit(u); err != nil {
		c.writeErr = fmt.Errorf("sink: %w", err)
	}
}

// variantOf returns the variant whose track t is, nil for the source's.
func (c *rtmpConn) variantOf(t *Track) *rtmpVariant {
	for _, v := range c.variants {
		if v.track == t {
			return v
		}
	}
	return nil
}

// ignoreRTMPTrack registers a callback that drops the data of an unused
// track: gortmplib's Reader.Read calls a nil function (and panics) for a
// track without one. The callbacks chosen do not parse the payload, so a
// codec the packager cannot use is dropped without error.
func ignoreRTMPTrack(r *gortmplib.Reader, t *gortmplib.Track) {
	if t.Codec.IsVideo() {
		r.OnDataVP9(t, func(time.Duration, []byte) {})
		return
	}
	r.OnDataMPEG1Audio(t, func(time.Duration, []byte) {})
}

// paramSets handles H.264/H.265 parameter sets. gortmplib hands every AVC or
// HEVC sequence header message to the callback as an access unit made only of
// parameter sets, starting with the one that opened the stream. Those that
// repeat the parameters already known are dropped; new ones (the encoder
// changed resolution) are put in front of the next access unit, where
// decoders and the packager look for in-band parameter sets.
type paramSets struct {
	isParam func(nalu []byte) bool
	current [][]byte
	pending [][]byte
}

func (p *paramSets) filter(au [][]byte) [][]byte {
	onlyParams := len(au) != 0
	for _, nalu := range au {
		if !p.isParam(nalu) {
			onlyParams = false
			break
		}
	}

	if onlyParams {
		if !equalNALUs(au, p.current) {
			p.current = au
			p.pending = au
		}
		return nil
	}

	if p.pending != nil {
		au = append(append([][]byte(nil), p.pending...), au...)
		p.pending = nil
	}
	return au
}

func equalNALUs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// isH264ParamSet reports an SPS (7) or PPS (8), ITU-T H.264 table 7-1.
func isH264ParamSet(nalu []byte) bool {
	if len(nalu) == 0 {
		return false
	}
	typ := nalu[0] & 0x1f
	return typ == 7 || typ == 8
}

// isH265ParamSet reports a VPS (32), SPS (33) or PPS (34), ITU-T H.265
// table 7-1.
func isH265ParamSet(nalu []byte) bool {
	if len(nalu) == 0 {
		return false
	}
	typ := (nalu[0] >> 1) & 0x3f
	return typ >= 32 && typ <= 34
}

// describeTracks lists track codecs for a log line.
func describeTracks(tracks []*Track) string {
	names := make([]string, len(tracks))
	for i, t := range tracks {
		names[i] = fmt.Sprintf("%d:%s", t.ID, codecName(t.Codec))
	}
	return strings.Join(names, ",")
}

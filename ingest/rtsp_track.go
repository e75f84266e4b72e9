package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpfragmented"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/pion/rtp"
)

// errUnsupportedCodec is returned for an RTSP media whose formats are none of
// H.264, H.265, MPEG-4 Audio (AAC, as RFC 3640 mpeg4-generic or RFC 6416
// MP4A-LATM) and Opus.
var errUnsupportedCodec = errors.New("unsupported codec")

// errLATMConfigChanged refuses an in-band LATM configuration whose AAC
// parameters differ from the ones the publication started with: the init
// segment cannot change within a publication.
var errLATMConfigChanged = errors.New("LATM: AudioSpecificConfig changed")

// errEmptyNALU refuses an access unit with an empty NAL unit, which the
// mediacommon functions after the depacketizer would index out of range.
var errEmptyNALU = errors.New("empty NAL unit")

// rtspTrack turns the RTP packets of one media format into access units:
// gortsplib's depacketizers rebuild the frames, gortsplib's timestamp
// decoder gives their PTS, and mediacommon's DTS extractors their DTS.
//
// What the libraries leave to the caller is done here: parameter sets that
// a publisher sends only out of band (SDP sprop-parameter-sets) are put in
// front of every random access unit, and the PTS of a frame that the
// depacketizer closes on a timestamp change is the one of the packets that
// carried it, not of the packet that closed it.
type rtspTrack struct {
	media  *description.Media
	format format.Format
	clock  int64
	video  bool

	h264 *rtph264.Decoder
	h265 *rtph265.Decoder
	aac  *rtpmpeg4audio.Decoder
	latm *rtpfragmented.Decoder
	opus *rtpsimpleaudio.Decoder

	// latmConfig is the StreamMuxConfig of a LATM track: from the SDP, or
	// (latmInBand, cpresent=1) from the first AudioMuxElement that carries
	// one. Nil until known.
	latmConfig *mpeg4audio.StreamMuxConfig
	latmInBand bool

	h264DTS h264.DTSExtractor
	h265DTS h265.DTSExtractor

	// Parameter sets: from the SDP, replaced by in-band ones as they come.
	vps, sps, pps []byte

	// open tells that the depacketizer holds whole NAL units of a frame
	// whose end it has not seen (no marker bit yet); openAt is when that
	// frame is.
	open   bool
	openAt rtspTime

	// track is the publication's track; nil until published, and for a
	// video track left out of the publication.
	track *Track
	// keySeen is set once a random access unit went out.
	keySeen bool

	// wall dates the units by their arrival; lastPTS (if hasLast) is the
	// PTS of the previous unit, whose distance to the next one is the
	// duration of a video frame.
	wall    wallClock
	lastPTS int64
	hasLast bool
}

// rtspTime is the position of an RTP packet on the publication's timeline.
type rtspTime struct {
	ts  uint32 // RTP timestamp
	pts int64  // in clock units; valid if ok
	ok  bool
	ntp time.Time
}

// rtspUnit is an access unit of a track, timestamps in clock units.
type rtspUnit struct {
	pts, dts int64
	ntp      time.Time
	wall     time.Time
	au       [][]byte
	frame    []byte
	key      bool
}

// newRTSPTrack returns a track for the first supported format of medi.
func newRTSPTrack(medi *description.Media) (*rtspTrack, error) {
	var names []string
	for _, f := range medi.Formats {
		t := &rtspTrack{media: medi, format: f}
		var err error
		switch f := f.(type) {
		case *format.H264:
			t.video = true
			t.sps, t.pps = f.SafeParams()
			t.h264, err = f.CreateDecoder()
			t.h264DTS.Initialize()
		case *format.H265:
			t.video = true
			t.vps, t.sps, t.pps = f.SafeParams()
			t.h265, err = f.CreateDecoder()
			t.h265DTS.Initialize()
		case *format.MPEG4Audio:
			if f.Config == nil || f.Config.SampleRate <= 0 {
				err = fmt.Errorf("no sample rate")
				break
			}
			t.aac, err = f.CreateDecoder()
		case *format.MPEG4AudioLATM:
			// GStreamer's rtspclientsink and many cameras send AAC this way.
			t.latmInBand = f.CPresent
			if !f.CPresent {
				t.latmConfig, err = latmSDPConfig(f.StreamMuxConfig)
				if err != nil {
					break
				}
			}
			t.latm, err = f.CreateDecoder()
		case *format.Opus:
			t.opus, err = f.CreateDecoder()
		default:
			names = append(names, f.Codec())
			continue
		}
		if err != nil {
			names = append(names, f.Codec()+" ("+err.Error()+")")
			continue
		}
		// After the checks above: a LATM format's clock rate is read from
		// its configuration.
		t.clock = int64(f.ClockRate())
		if t.clock <= 0 {
			names = append(names, f.Codec()+" (no clock rate)")
			continue
		}
		return t, nil
	}
	return nil, fmt.Errorf("%w: %s", errUnsupportedCodec, joinNames(names))
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "no format"
	}
	return strings.Join(names, ", ")
}

// codec returns the track's codec for the init segment, or nil for a video
// track whose parameter sets are not known yet.
func (t *rtspTrack) codec() codecs.Codec {
	switch f := t.format.(type) {
	case *format.H264:
		if t.sps == nil || t.pps == nil {
			return nil
		}
		return &codecs.H264{SPS: t.sps, PPS: t.pps}
	case *format.H265:
		if t.vps == nil || t.sps == nil || t.pps == nil {
			return nil
		}
		return &codecs.H265{VPS: t.vps, SPS: t.sps, PPS: t.pps}
	case *format.MPEG4Audio:
		return &codecs.MPEG4Audio{Config: *f.Config}
	case *format.MPEG4AudioLATM:
		if t.latmConfig == nil {
			return nil
		}
		return &codecs.MPEG4Audio{Config: *latmASC(t.latmConfig)}
	case *format.Opus:
		return &codecs.Opus{ChannelCount: max(f.ChannelCount, 1)}
	}
	return nil
}

// decode takes one RTP packet and returns the access units it completes.
// at is where the packet is on the timeline.
func (t *rtspTrack) decode(pkt *rtp.Packet, at rtspTime) ([]rtspUnit, error) {
	switch {
	case t.h264 != nil:
		au, err := t.h264.Decode(pkt)
		return t.videoUnit(pkt, at, au, err, rtph264.ErrMorePacketsNeeded, rtph264.ErrNonStartingPacketAndNoPrevious)
	case t.h265 != nil:
		au, err := t.h265.Decode(pkt)
		return t.videoUnit(pkt, at, au, err, rtph265.ErrMorePacketsNeeded, rtph265.ErrNonStartingPacketAndNoPrevious)
	case t.aac != nil:
		aus, err := t.aac.Decode(pkt)
		if err != nil {
			if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
				return nil, nil
			}
			return nil, err
		}
		if !at.ok {
			return nil, nil
		}
		// RFC 3640 3.2.3.1: the RTP timestamp is the one of the first
		// access unit; the others follow at one frame each.
		return t.audioUnits(at, aus, t.clock), nil
	case t.latm != nil:
		el, err := t.latm.Decode(pkt)
		if err != nil {
			if errors.Is(err, rtpfragmented.ErrMorePacketsNeeded) {
				return nil, nil
			}
			return nil, err
		}
		aus, err := t.latmFrames(el)
		if err != nil || !at.ok {
			return nil, err
		}
		// RFC 6416 7.3: the RTP timestamp is the one of the first
		// subframe of the audioMuxElement; the others follow at one frame
		// each.
		return t.audioUnits(at, aus, int64(latmASC(t.latmConfig).SampleRate)), nil
	case t.opus != nil:
		frame, err := t.opus.Decode(pkt)
		if err != nil || !at.ok || len(frame) == 0 {
			return nil, err
		}
		return []rtspUnit{{pts: at.pts, dts: at.pts, ntp: at.ntp, frame: frame, key: true}}, nil
	}
	return nil, nil
}

// audioUnits dates the AAC frames of one RTP packet, the first at at, the
// others one frame (1024 samples at rate) after each other.
func (t *rtspTrack) audioUnits(at rtspTime, aus [][]byte, rate int64) []rtspUnit {
	units := make([]rtspUnit, 0, len(aus))
	for i, au := range aus {
		if len(au) == 0 {
			continue
		}
		// In clock units, which are the sample rate except for LATM with an
		// in-band configuration (90 kHz).
		d := int64(i) * mpeg4audio.SamplesPerAccessUnit * t.clock / rate
		u := rtspUnit{pts: at.pts + d, dts: at.pts + d, frame: au, key: true}
		if !at.ntp.IsZero() {
			u.ntp = at.ntp.Add(t.duration(d))
		}
		units = append(units, u)
	}
	return units
}

// latmFrames unpacks the AAC frames (raw_data_block, as RFC 3640 would
// carry them) of one audioMuxElement (ISO 14496-3 1.7.3), taking its
// StreamMuxConfig when the publisher sends it in band.
func (t *rtspTrack) latmFrames(el []byte) ([][]byte, error) {
	e := mpeg4audio.AudioMuxElement{MuxConfigPresent: t.latmInBand, StreamMuxConfig: t.latmConfig}
	if err := e.Unmarshal(el); err != nil {
		return nil, fmt.Errorf("LATM: %w", err)
	}
	if e.StreamMuxConfig != t.latmConfig {
		if err := checkLATMConfig(e.StreamMuxConfig); err != nil {
			return nil, err
		}
		if t.latmConfig != nil && !sameAAC(latmASC(t.latmConfig), latmASC(e.StreamMuxConfig)) {
			return nil, errLATMConfigChanged
		}
		t.latmConfig = e.StreamMuxConfig
	}
	// Only the first program's first layer is the AAC stream; further
	// layers (scalable coding) and programs are left out.
	frames := make([][]byte, 0, len(e.Payloads))
	for _, sub := range e.Payloads {
		if len(sub) > 0 && len(sub[0]) > 0 {
			frames = append(frames, sub[0][0])
		}
	}
	return frames, nil
}

// latmSDPConfig returns the StreamMuxConfig that the audioMuxElements of a
// track with the configuration in the SDP (cpresent=0) are read with. Only
// its fields up to and with the AudioSpecificConfig's core are taken:
// mediacommon does not skip the AudioSpecificConfig's SBR sync extension
// (GStreamer's avenc_aac signals one), which shifts every field after it, so
// the frame length type is taken to be 0, variable-length frames, which is
// what RFC 6416 senders of AAC use. Unmarshalling an element checks that it
// is consumed exactly, which a wrong guess would not pass.
func latmSDPConfig(c *mpeg4audio.StreamMuxConfig) (*mpeg4audio.StreamMuxConfig, error) {
	if err := checkLATMConfig(c); err != nil {
		return nil, err
	}
	if len(c.Programs) != 1 || len(c.Programs[0].Layers) != 1 {
		return nil, errors.New("LATM: more than one program or layer")
	}
	return &mpeg4audio.StreamMuxConfig{
		NumSubFrames: c.NumSubFrames,
		Programs: []*mpeg4audio.StreamMuxConfigProgram{{Layers: []*mpeg4audio.StreamMuxConfigLayer{{
			AudioSpecificConfig: latmASC(c),
			LatmBufferFullness:  255,
		}}}},
	}, nil
}

// checkLATMConfig refuses a StreamMuxConfig whose AAC stream the packager
// cannot take.
func checkLATMConfig(c *mpeg4audio.StreamMuxConfig) error {
	if c == nil || len(c.Programs) == 0 || len(c.Programs[0].Layers) == 0 || latmASC(c) == nil {
		return errors.New("LATM: no AudioSpecificConfig")
	}
	if latmASC(c).SampleRate <= 0 {
		return errors.New("LATM: no sample rate")
	}
	return nil
}

// latmASC is the AudioSpecificConfig of the first layer of the first
// program of a checked StreamMuxConfig.
func latmASC(c *mpeg4audio.StreamMuxConfig) *mpeg4audio.AudioSpecificConfig {
	return c.Programs[0].Layers[0].AudioSpecificConfig
}

// sameAAC reports whether two configurations decode alike.
func sameAAC(a, b *mpeg4audio.AudioSpecificConfig) bool {
	return a.Type == b.Type && a.SampleRate == b.SampleRate && a.ChannelConfig == b.ChannelConfig &&
		a.ExtensionType == b.ExtensionType && a.ExtensionSampleRate == b.ExtensionSampleRate
}

// videoUnit finishes the decoding of a video packet: it dates the frame the
// depacketizer returned, puts parameter sets in front of random access units
// and extracts the DTS.
func (t *rtspTrack) videoUnit(pkt *rtp.Packet, at rtspTime, au [][]byte, err error, errMore, errNoStart error) ([]rtspUnit, error) {
	if err != nil {
		if errors.Is(err, errMore) {
			// The frame goes on. The depacketizer holds this packet's NAL
			// units unless the packet was a fragment short of its end.
			if !t.midFragment(pkt.Payload) {
				t.open, t.openAt = true, at
			}
			return nil, nil
		}
		if errors.Is(err, errNoStart) {
			return nil, nil // joined in the middle of a fragmented NAL unit
		}
		return nil, err
	}

	// The depacketizer returns a frame on its marker bit, or, for publishers
	// that do not set it, when the RTP timestamp changes: then the frame is
	// the one it held (at openAt) and this packet starts the next one.
	when := at
	if t.open && t.openAt.ts != pkt.Timestamp {
		when = t.openAt
		t.openAt = at
	} else {
		t.open = false
	}
	if !when.ok || len(au) == 0 {
		return nil, nil
	}
	for _, nalu := range au {
		if len(nalu) == 0 {
			return nil, errEmptyNALU
		}
	}

	au = t.withParams(au)
	u := rtspUnit{pts: when.pts, ntp: when.ntp, au: au}
	if t.h264 != nil {
		u.key = h264.IsRandomAccess(au)
		u.dts, err = t.h264DTS.Extract(au, when.pts)
	} else {
		u.key = h265.IsRandomAccess(au)
		u.dts, err = t.h265DTS.Extract(au, when.pts)
	}
	if err != nil {
		if !t.keySeen && !u.key {
			// Frames before the first random access unit cannot be
			// decoded and have no DTS; they are dropped quietly.
			return nil, nil
		}
		return nil, fmt.Errorf("DTS: %w", err)
	}
	if u.key {
		t.keySeen = true
	}
	return []rtspUnit{u}, nil
}

// midFragment reports whether an RTP payload is a fragment of a NAL unit
// other than the last one (RFC 6184 5.8 FU-A, RFC 7798 4.4.3 FU).
func (t *rtspTrack) midFragment(payload []byte) bool {
	if t.h264 != nil {
		return len(payload) >= 2 && h264.NALUType(payload[0]&0x1F) == h264.NALUTypeFUA && payload[1]&0x40 == 0
	}
	return len(payload) >= 3 && h265.NALUType((payload[0]>>1)&0x3F) == h265.NALUType_FragmentationUnit &&
		payload[2]&0x40 == 0
}

// withParams records the parameter sets an access unit carries and makes
// sure a random access unit carries all of them: when some are missing, the
// known ones are put in front, in order (VPS, SPS, PPS), after a leading
// access unit delimiter, which must stay first. Decoders, the DTS extractors
// and fMP4 players need them in band; many encoders send them only in the
// SDP.
func (t *rtspTrack) withParams(au [][]byte) [][]byte {
	var hasVPS, hasSPS, hasPPS, key bool
	aud := 0
	for i, nalu := range au {
		if t.h264 != nil {
			switch h264.NALUType(nalu[0] & 0x1F) {
			case h264.NALUTypeSPS:
				t.sps, hasSPS = nalu, true
			case h264.NALUTypePPS:
				t.pps, hasPPS = nalu, true
			case h264.NALUTypeIDR:
				key = true
			case h264.NALUTypeAccessUnitDelimiter:
				if i == 0 {
					aud = 1
				}
			}
			continue
		}
		switch h265.NALUType((nalu[0] >> 1) & 0x3F) {
		case h265.NALUType_VPS_NUT:
			t.vps, hasVPS = nalu, true
		case h265.NALUType_SPS_NUT:
			t.sps, hasSPS = nalu, true
		case h265.NALUType_PPS_NUT:
			t.pps, hasPPS = nalu, true
		case h265.NALUType_IDR_W_RADL, h265.NALUType_IDR_N_LP, h265.NALUType_CRA_NUT:
			key = true
		case h265.NALUType_AUD_NUT:
			if i == 0 {
				aud = 1
			}
		}
	}
	if t.h264 != nil {
		hasVPS = true
	}
	if !key || (hasVPS && hasSPS && hasPPS) {
		return au
	}
	out := make([][]byte, 0, len(au)+3)
	out = append(out, au[:aud]...)
	for _, param := range [][]byte{t.vps, t.sps, t.pps} {
		if param != nil {
			out = append(out, param)
		}
	}
	for _, nalu := range au[aud:] {
		if !t.isParam(nalu) {
			out = append(out, nalu)
		}
	}
	return out
}

// isParam reports whether a NAL unit is a parameter set.
func (t *rtspTrack) isParam(nalu []byte) bool {
	if t.h264 != nil {
		typ := h264.NALUType(nalu[0] & 0x1F)
		return typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS
	}
	typ := h265.NALUType((nalu[0] >> 1) & 0x3F)
	return typ == h265.NALUType_VPS_NUT || typ == h265.NALUType_SPS_NUT || typ == h265.NALUType_PPS_NUT
}

// duration converts clock units to a duration without overflowing for
// timestamps of long-running streams.
func (t *rtspTrack) duration(v int64) time.Duration {
	secs, rem := v/t.clock, v%t.clock
	return time.Duration(secs)*time.Second + time.Duration(rem)*time.Second/time.Duration(t.clock)
}

// date records the arrival of u and sets its wall time. It returns how far
// the track's wall clock moved back.
func (t *rtspTrack) date(u *rtspUnit, arrived time.Time) time.Duration {
	pts := t.duration(u.pts)
	back := t.wall.observe(pts+t.frameDuration(u), arrived)
	u.wall = t.wall.at(pts)
	return back
}

// frameDuration is how long u lasts: exact for audio, the distance from the
// previous frame for video (zero when unknown).
func (t *rtspTrack) frameDuration(u *rtspUnit) time.Duration {
	switch {
	case t.aac != nil:
		return t.duration(mpeg4audio.SamplesPerAccessUnit)
	case t.latm != nil:
		return time.Second * mpeg4audio.SamplesPerAccessUnit / time.Duration(latmASC(t.latmConfig).SampleRate)
	case t.opus != nil:
		return time.Duration(opus.PacketDuration2(u.frame)) * time.Second / 48000
	}
	var d time.Duration
	if t.hasLast && u.pts > t.lastPTS {
		d = min(t.duration(u.pts-t.lastPTS), time.Second)
	}
	t.lastPTS, t.hasLast = u.pts, true
	return d
}

// unit converts an access unit to the stream model.
func (t *rtspTrack) unit(u *rtspUnit) *Unit {
	return &Unit{
		Track: t.track,
		PTS:   t.duration(u.pts),
		DTS:   t.duration(u.dts),
		AU:    u.au,
		Frame: u.frame,
		NTP:   u.ntp,
		Wall:  u.wall,
	}
}

package ingest

import (
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
)

// rtmpProbe sits under gortmplib's Reader while the Reader detects tracks
// (Reader.Initialize reads the first 2s of media, or less with fastStart,
// then replays them). It keeps what gortmplib's tracks leave out and the
// fMP4 init segment needs: the AV1 sequence header and the VP9 frame size
// and colour configuration, both carried by the first key frame.
// gortmplib's codecs.AV1 and codecs.VP9 are empty structs.
type rtmpProbe struct {
	gortmplib.Conn

	// stopped is set once tracks are known; later messages pass untouched.
	stopped bool

	// fast ends the analysis early; marker is its message to the Reader,
	// handed out at the next Read.
	fast   fastStart
	marker message.Message

	// av1Config holds the sequence header OBU of the Enhanced RTMP
	// sequence start (av1C configOBUs) per track ID.
	av1Config map[uint8][]byte
	// av1Frame holds the first sequence header OBU found in coded frames.
	av1Frame map[uint8][]byte
	// vp9Key holds the header of the first VP9 key frame.
	vp9Key map[uint8]*vp9.Header

	// videoWall and audioWall have seen when the analysed media arrived:
	// the Reader replays it at once after the analysis, too late to be
	// dated then.
	videoWall, audioWall wallClock
}

func (p *rtmpProbe) Read() (message.Message, error) {
	if m := p.marker; m != nil {
		p.marker = nil
		return m, nil
	}
	msg, err := p.Conn.Read()
	if err == nil && !p.stopped {
		p.dateArrival(msg, time.Now())
		p.inspect(msg)
		p.marker = p.fast.observe(msg, p)
	}
	return msg, err
}

// dateArrival records the arrival of a media message.
func (p *rtmpProbe) dateArrival(msg message.Message, arrived time.Time) {
	switch m := msg.(type) {
	case *message.Video:
		p.videoWall.date(m.DTS+m.PTSDelta, m.DTS, arrived)
	case *message.VideoExCodedFrames:
		p.videoWall.date(m.DTS+m.PTSDelta, m.DTS, arrived)
	case *message.VideoExFramesX:
		p.videoWall.date(m.DTS, m.DTS, arrived)
	case *message.Audio:
		p.audioWall.date(m.DTS, m.DTS, arrived)
	case *message.AudioExCodedFrames:
		p.audioWall.date(m.DTS, m.DTS, arrived)
	}
}

func (p *rtmpProbe) inspect(msg message.Message) {
	var trackID uint8
	if mt, ok := msg.(*message.VideoExMultitrack); ok {
		trackID = mt.TrackID
		msg = mt.Wrapped
	}

	switch m := msg.(type) {
	case *message.VideoExSequenceStart:
		if m.FourCC == message.FourCCAV1 && m.AV1Config != nil {
			if obu := av1SequenceHeader(m.AV1Config.ConfigOBUs); obu != nil {
				p.setAV1(&p.av1Config, trackID, obu)
			}
		}

	case *message.VideoExCodedFrames:
		p.inspectFrame(trackID, m.FourCC, m.Payload)

	case *message.VideoExFramesX:
		p.inspectFrame(trackID, m.FourCC, m.Payload)
	}
}

func (p *rtmpProbe) inspectFrame(trackID uint8, fourCC message.FourCC, payload []byte) {
	switch fourCC {
	case message.FourCCAV1:
		if _, ok := p.av1Frame[trackID]; ok {
			return
		}
		if obu := av1SequenceHeader(payload); obu != nil {
			p.setAV1(&p.av1Frame, trackID, obu)
		}

	case message.FourCCVP9:
		if _, ok := p.vp9Key[trackID]; ok {
			return
		}
		var h vp9.Header
		if h.Unmarshal(payload) != nil || h.NonKeyFrame || h.FrameSize == nil || h.ColorConfig == nil {
			return
		}
		if p.vp9Key == nil {
			p.vp9Key = make(map[uint8]*vp9.Header)
		}
		p.vp9Key[trackID] = &h
	}
}

func (p *rtmpProbe) setAV1(m *map[uint8][]byte, trackID uint8, obu []byte) {
	if *m == nil {
		*m = make(map[uint8][]byte)
	}
	(*m)[trackID] = obu
}

// av1 returns the AV1 sequence header of the lowest track ID that has one,
// preferring the one sent in band with a key frame over the configOBUs of the
// sequence start (which some muxers fill with a placeholder).
func (p *rtmpProbe) av1() []byte {
	if obu := lowestTrack(p.av1Frame); obu != nil {
		return obu
	}
	return lowestTrack(p.av1Config)
}

// vp9 returns the first key frame header of the lowest track ID that has one.
func (p *rtmpProbe) vp9() *vp9.Header {
	return lowestTrack(p.vp9Key)
}

func lowestTrack[T any](m map[uint8]T) T {
	var zero T
	for id := 0; id < 256 && len(m) != 0; id++ {
		if v, ok := m[uint8(id)]; ok {
			return v
		}
	}
	return zero
}

// av1SequenceHeader returns the sequence header OBU of a low overhead
// bitstream (OBUs with size fields, as in RTMP and av1C), in the form
// gortmplib hands out OBUs (without the size field), or nil.
func av1SequenceHeader(buf []byte) []byte {
	if len(buf) == 0 {
		return nil
	}
	var bs av1.Bitstream
	if bs.Unmarshal(buf) != nil {
		return nil
	}
	for _, obu := range bs {
		if len(obu) > 0 && av1.OBUType((obu[0]>>3)&0b1111) == av1.OBUTypeSequenceHeader {
			return obu
		}
	}
	return nil
}

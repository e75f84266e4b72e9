package ingest

import (
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// rtmpAnalysis is how much media gortmplib's Reader reads before it
// settles the tracks (its analyzePeriod): a fixed 2 s of timestamps,
// whatever the publisher declared.
const rtmpAnalysis = 2 * time.Second

// fastStart ends gortmplib's track analysis as soon as the publisher has
// configured the tracks its onMetaData declares and sent a frame of each,
// instead of after 2 s of media. The 2 s delayed every stream's start and,
// worse, every OBS reconnect: viewers waited through the drop and then 2 s
// more before the first new part.
//
// gortmplib has no option for this; its analysis loop ends on a media
// timestamp 2 s past the first. Once everything is known, the probe hands
// the Reader one more message: a video end-of-sequence marker stamped
// rtmpAnalysis after the first timestamp. The Reader takes no track from it,
// and on the replay after the analysis every video callback of gortmplib
// ignores it (they read configurations and frames only).
//
// Only the common case is shortened: onMetaData declaring one video and one
// audio track (videocodecid and audiocodecid non-zero, as OBS and ffmpeg
// send), with no Enhanced RTMP multitrack. Anything else takes gortmplib's
// full analysis, since a track it had not seen during the analysis would
// make the Reader fail on that track's first message.
type fastStart struct {
	declared bool // onMetaData declared a video and an audio track
	off      bool // multitrack or track maps: the full analysis

	started bool          // gortmplib's analysis clock started
	start   time.Duration // the first media timestamp

	videoConfig, videoFrame bool
	videoFourCC             message.FourCC // of an Enhanced RTMP sequence start
	audioConfig, audioFrame bool

	done bool
}

// observe follows one message read during the analysis, and returns the
// marker that ends it once the declared tracks are ready (once).
func (f *fastStart) observe(msg message.Message, p *rtmpProbe) message.Message {
	if f.done || f.off {
		return nil
	}
	switch m := msg.(type) {
	case *message.DataAMF0:
		f.metadata(m.Payload)
	case *message.VideoExMultitrack, *message.AudioExMultitrack:
		f.off = true
		return nil
	case *message.Video:
		f.clock(m.DTS)
		switch m.Type {
		case message.VideoTypeConfig:
			if (m.Codec == message.CodecH264 && m.AVCConfig != nil) ||
				(m.Codec == message.CodecH265 && m.HEVCConfig != nil) {
				f.videoConfig = true
			}
		case message.VideoTypeAU:
			f.videoFrame = true
		}
	case *message.VideoExSequenceStart:
		f.videoConfig, f.videoFourCC = true, m.FourCC
	case *message.VideoExCodedFrames:
		f.clock(m.DTS)
		f.videoFrame = true
	case *message.VideoExFramesX:
		f.clock(m.DTS)
		f.videoFrame = true
	case *message.Audio:
		f.clock(m.DTS)
		// gortmplib takes AAC from its config message and any other codec
		// from its first frame.
		switch {
		case m.Codec != message.CodecMPEG4Audio:
			f.audioConfig, f.audioFrame = true, true
		case m.AACType == message.AudioAACTypeConfig && m.AACConfig != nil:
			f.audioConfig = true
		case m.AACType == message.AudioAACTypeAU:
			f.audioFrame = true
		}
	case *message.AudioExCodedFrames:
		// gortmplib builds an Enhanced RTMP audio track at its first frame.
		f.clock(m.DTS)
		f.audioConfig, f.audioFrame = true, true
	}
	if !f.ready(p) {
		return nil
	}
	f.done = true
	return &message.Video{
		ChunkStreamID:   message.VideoChunkStreamID,
		MessageStreamID: 0x1000000,
		Type:            message.VideoTypeEOS,
		DTS:             f.start + rtmpAnalysis,
	}
}

// clock starts the analysis clock as gortmplib does: at the first audio
// or video message, configurations included.
func (f *fastStart) clock(dts time.Duration) {
	if !f.started {
		f.started, f.start = true, dts
	}
}

func (f *fastStart) ready(p *rtmpProbe) bool {
	if !f.declared || !f.started || !f.videoConfig || !f.videoFrame || !f.audioConfig || !f.audioFrame {
		return false
	}
	// The probe's own parameters come from the first key frame.
	switch f.videoFourCC {
	case message.FourCCAV1:
		return p.av1() != nil
	case message.FourCCVP9:
		return p.vp9() != nil
	}
	return true
}

// metadata reads onMetaData (with or without @setDataFrame).
func (f *fastStart) metadata(payload []any) {
	if len(payload) > 0 && payload[0] == "@setDataFrame" {
		payload = payload[1:]
	}
	if len(payload) < 2 || payload[0] != "onMetaData" {
		return
	}
	var obj amf0.Object
	switch v := payload[1].(type) {
	case amf0.Object:
		obj = v
	case amf0.ECMAArray:
		obj = amf0.Object(v)
	default:
		return
	}
	var video, audio bool
	for _, e := range obj {
		switch e.Key {
		case "videocodecid":
			video = nonZero(e.Value)
		case "audiocodecid":
			audio = nonZero(e.Value)
		case "videoTrackIdInfoMap", "audioTrackIdInfoMap":
			f.off = true
		}
	}
	f.declared = video && audio
}

// nonZero reports whether a codec id is set: a number other than 0 or a
// FourCC string.
func nonZero(v any) bool {
	switch v := v.(type) {
	case float64:
		return v != 0
	case string:
		return v != ""
	}
	return false
}

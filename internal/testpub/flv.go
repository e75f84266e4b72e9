package testpub

import (
	"fmt"
	"os"
	"time"

	"github.com/yapingcat/gomedia/go-codec"
	flv "github.com/yapingcat/gomedia/go-flv"
)

// Codec is the codec of a Frame.
type Codec string

// Codecs gomedia's FLV demuxer and RTMP client handle.
const (
	CodecH264  Codec = "H264"
	CodecH265  Codec = "H265"
	CodecAAC   Codec = "AAC"
	CodecMP3   Codec = "MP3"
	CodecG711A Codec = "G711A"
	CodecG711U Codec = "G711U"
)

// IsVideo reports whether c is a video codec.
func (c Codec) IsVideo() bool {
	return c == CodecH264 || c == CodecH265
}

// Frame is one audio or video frame of an FLV file, as gomedia's FLV demuxer
// gives it.
type Frame struct {
	Codec Codec
	// PTS and DTS are the FLV timestamps (milliseconds): DTS is the tag
	// timestamp, PTS adds the composition time offset of video tags.
	PTS time.Duration
	DTS time.Duration
	// Data is an Annex-B access unit for video (gomedia puts the SPS and PPS
	// of the sequence header in front of key frames that lack them), an ADTS
	// frame for AAC, the tag payload for other audio.
	Data []byte
}

// ReadFLV returns the video and audio frames of an FLV file, each in file
// order, for comparison with what a server received.
func ReadFLV(path string) (video []Frame, audio []Frame, err error) {
	frames, err := readFrames(path)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range frames {
		if f.Codec.IsVideo() {
			video = append(video, f)
		} else {
			audio = append(audio, f)
		}
	}
	return video, audio, nil
}

// readFrames demuxes an FLV file into frames in file order.
func readFrames(path string) ([]Frame, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	frames, err := parseFLV(buf)
	if err != nil {
		return nil, fmt.Errorf("demux %s: %w", path, err)
	}
	return frames, nil
}

// parseFLV demuxes FLV bytes (which it rewrites in place) with gomedia.
func parseFLV(buf []byte) ([]Frame, error) {
	var frames []Frame
	var cbErr error
	r := flv.CreateFlvReader()
	r.OnFrame = func(cid codec.CodecID, frame []byte, pts, dts uint32) {
		c, ok := codecFromGomedia(cid)
		if !ok {
			if cbErr == nil {
				cbErr = fmt.Errorf("unsupported codec id %d", cid)
			}
			return
		}
		frames = append(frames, Frame{
			Codec: c,
			PTS:   time.Duration(pts) * time.Millisecond,
			DTS:   time.Duration(dts) * time.Millisecond,
			// The demuxer hands out slices of its input, rewritten in place.
			Data: append([]byte(nil), frame...),
		})
	}

	// gomedia panics on malformed input; the whole file is one Input call.
	if err := safe(func() error { return r.Input(buf) }); err != nil {
		return nil, err
	}
	if cbErr != nil {
		return nil, cbErr
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("no frames")
	}
	return frames, nil
}

func codecFromGomedia(cid codec.CodecID) (Codec, bool) {
	switch cid {
	case codec.CODECID_VIDEO_H264:
		return CodecH264, true
	case codec.CODECID_VIDEO_H265:
		return CodecH265, true
	case codec.CODECID_AUDIO_AAC:
		return CodecAAC, true
	case codec.CODECID_AUDIO_MP3:
		return CodecMP3, true
	case codec.CODECID_AUDIO_G711A:
		return CodecG711A, true
	case codec.CODECID_AUDIO_G711U:
		return CodecG711U, true
	}
	return "", false
}

func codecToGomedia(c Codec) (codec.CodecID, bool) {
	switch c {
	case CodecH264:
		return codec.CODECID_VIDEO_H264, true
	case CodecH265:
		return codec.CODECID_VIDEO_H265, true
	case CodecAAC:
		return codec.CODECID_AUDIO_AAC, true
	case CodecMP3:
		return codec.CODECID_AUDIO_MP3, true
	case CodecG711A:
		return codec.CODECID_AUDIO_G711A, true
	case CodecG711U:
		return codec.CODECID_AUDIO_G711U, true
	}
	return 0, false
}

// safe runs f, turning a panic into an error: gomedia panics on malformed
// input (about 40 panic sites), and a test publisher must fail, not crash the
// test binary.
func safe(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gomedia panic: %v", p)
		}
	}()
	return f()
}

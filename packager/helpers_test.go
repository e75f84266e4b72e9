package packager

import (
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
)

// testSPS is a 640x360 High profile SPS from x264.
var testSPS = []byte{
	0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
	0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16,
	0x2d, 0x96,
}

var testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}

// synth feeds a publication synthetic H.264 + AAC units, as a publisher
// sending fps frames per second with a keyframe every gop frames would.
type synth struct {
	t          *testing.T
	pub        ingest.Publication
	video      *ingest.Track
	audio      *ingest.Track
	fps        int
	gop        int
	frame      int
	audioNext  time.Duration
	start      time.Duration
	msRounding bool
}

func newSynth(t *testing.T) (*synth, ingest.PublishInfo) {
	s := &synth{
		t:     t,
		video: &ingest.Track{ID: 1, Codec: &codecs.H264{SPS: testSPS, PPS: testPPS}},
		audio: &ingest.Track{ID: 2, Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2,
		}}},
		fps: 30, gop: 60, msRounding: true,
	}
	return s, ingest.PublishInfo{Name: "test", Proto: "rtmp", Remote: "127.0.0.1:1", Tracks: []*ingest.Track{s.video, s.audio}}
}

func (s *synth) round(d time.Duration) time.Duration {
	if s.msRounding {
		return d.Truncate(time.Millisecond)
	}
	return d
}

// next sends one video frame and the audio frames up to its time.
func (s *synth) next() {
	s.t.Helper()
	dts := s.start + time.Duration(s.frame)*time.Second/time.Duration(s.fps)
	for s.audioNext <= dts {
		if err := s.pub.WriteUnit(&ingest.Unit{Track: s.audio, PTS: s.round(s.start + s.audioNext), DTS: s.round(s.start + s.audioNext), Frame: make([]byte, 200)}); err != nil {
			s.t.Fatal(err)
		}
		s.audioNext += 1024 * time.Second / 48000
	}
	var au [][]byte
	if s.frame%s.gop == 0 {
		au = [][]byte{testSPS, testPPS, {0x65, 0x88, 0x84, byte(s.frame)}}
	} else {
		au = [][]byte{{0x41, 0x9a, byte(s.frame >> 8), byte(s.frame)}}
	}
	if err := s.pub.WriteUnit(&ingest.Unit{Track: s.video, PTS: s.round(dts), DTS: s.round(dts), AU: au}); err != nil {
		s.t.Fatal(err)
	}
	s.frame++
}

func (s *synth) frames(n int) {
	for range n {
		s.next()
	}
}

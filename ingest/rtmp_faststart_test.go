package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// TestRTMPFastStart publishes the configurations and one frame of each
// track, then nothing: gortmplib alone would wait for 2 s of media before
// the tracks are known. The publication starts anyway, and every frame,
// the first ones included, arrives once with its timestamps.
func TestRTMPFastStart(t *testing.T) {
	ts := startTestServer(t, nil)
	aacConfig := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 2, ChannelCount: 2}
	video := &gortmplib.Track{Codec: &rtmpcodecs.H264{SPS: testH264SPS, PPS: testH264PPS}}
	audio := &gortmplib.Track{Codec: &rtmpcodecs.MPEG4Audio{Config: &aacConfig}}
	w := gortmplibPublisher(t, ts, "/live/fast", video, audio)
	const frames = 6
	write := func(i int) {
		t.Helper()
		pts := time.Duration(i) * 40 * time.Millisecond
		nalu := byte(0x41) // non-IDR slice
		if i == 0 {
			nalu = 0x65
		}
		if err := w.WriteH264(video, pts, pts, [][]byte{{nalu, 0x88, byte(i)}}); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMPEG4Audio(audio, pts, []byte{0x21, 0x10, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	p := ts.sink.waitPub(t, 0, 5*time.Second)
	for i := 1; i < frames; i++ {
		write(i)
	}
	waitUntil(t, &ts.sink.notifier, 5*time.Second, "every frame", func() bool {
		ts.sink.mu.Lock()
		defer ts.sink.mu.Unlock()
		return len(p.units) >= 2*frames
	}, nil)

	ts.sink.snapshot(func() {
		if len(p.info.Tracks) != 2 {
			t.Fatalf("%d tracks, want 2", len(p.info.Tracks))
		}
		if _, ok := p.info.Tracks[0].Codec.(*codecs.H264); !ok {
			t.Fatalf("track 1 is %T", p.info.Tracks[0].Codec)
		}
		if _, ok := p.info.Tracks[1].Codec.(*codecs.MPEG4Audio); !ok {
			t.Fatalf("track 2 is %T", p.info.Tracks[1].Codec)
		}
		var got, want []string
		for i := range frames {
			pts := time.Duration(i) * 40 * time.Millisecond
			want = append(want, fmt.Sprintf("1 %v %v %d", pts, pts, i), fmt.Sprintf("2 %v %v %d", pts, pts, i))
		}
		for _, u := range p.units {
			var last byte
			if u.Track.ID == 1 {
				au := u.AU[len(u.AU)-1]
				last = au[len(au)-1]
			} else {
				last = u.Frame[len(u.Frame)-1]
			}
			got = append(got, fmt.Sprintf("%d %v %v %d", u.Track.ID, u.PTS, u.DTS, last))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("units\n%v\nwant\n%v", got, want)
		}
	})
}

func TestFastStartObserve(t *testing.T) {
	meta := func(entries ...amf0.ObjectEntry) *message.DataAMF0 {
		return &message.DataAMF0{Payload: []any{"@setDataFrame", "onMetaData", amf0.Object(entries)}}
	}
	av := meta(amf0.ObjectEntry{Key: "videocodecid", Value: float64(7)}, amf0.ObjectEntry{Key: "audiocodecid", Value: float64(10)})
	avc := &message.Video{Codec: message.CodecH264, Type: message.VideoTypeConfig, AVCConfig: &mp4.AVCDecoderConfiguration{}, DTS: 100 * time.Millisecond}
	frame := &message.Video{Codec: message.CodecH264, Type: message.VideoTypeAU, DTS: 100 * time.Millisecond}
	aacCfg := &message.Audio{Codec: message.CodecMPEG4Audio, AACType: message.AudioAACTypeConfig,
		AACConfig: &mpeg4audio.AudioSpecificConfig{Type: 2}, DTS: 100 * time.Millisecond}
	aacAU := &message.Audio{Codec: message.CodecMPEG4Audio, AACType: message.AudioAACTypeAU, DTS: 110 * time.Millisecond}
	hevcStart := &message.VideoExSequenceStart{FourCC: message.FourCCHEVC}
	hevcFrame := &message.VideoExCodedFrames{FourCC: message.FourCCHEVC, DTS: 100 * time.Millisecond}
	vp9Start := &message.VideoExSequenceStart{FourCC: message.FourCCVP9}
	vp9Inter := &message.VideoExCodedFrames{FourCC: message.FourCCVP9, DTS: 100 * time.Millisecond, Payload: []byte{0x86}}
	vp9Key := &message.VideoExCodedFrames{FourCC: message.FourCCVP9, DTS: 140 * time.Millisecond, Payload: testVP9KeyFrame}
	opusStart := &message.AudioExSequenceStart{FourCC: message.FourCCOpus}
	opusFrame := &message.AudioExCodedFrames{FourCC: message.FourCCOpus, DTS: 100 * time.Millisecond}
	multi := &message.VideoExMultitrack{TrackID: 1, Wrapped: hevcStart}

	for _, tc := range []struct {
		name string
		msgs []message.Message
		at   int // index of the message after which the marker comes; -1: never
	}{
		{"OBS: metadata, configs, frames", []message.Message{av, avc, aacCfg, frame, aacAU}, 4},
		{"audio frame first", []message.Message{av, avc, aacCfg, aacAU, frame}, 4},
		{"metadata after the configs", []message.Message{avc, aacCfg, frame, aacAU, av}, 4},
		{"no metadata", []message.Message{avc, aacCfg, frame, aacAU, frame}, -1},
		{"no audio declared", []message.Message{
			meta(amf0.ObjectEntry{Key: "videocodecid", Value: float64(7)}, amf0.ObjectEntry{Key: "audiocodecid", Value: float64(0)}),
			avc, aacCfg, frame, aacAU}, -1},
		{"no video frame yet", []message.Message{av, avc, aacCfg, aacAU, aacAU}, -1},
		{"AAC config after its first frame", []message.Message{av, avc, frame, aacAU, aacCfg}, 4},
		{"track maps in metadata", []message.Message{
			meta(amf0.ObjectEntry{Key: "videocodecid", Value: float64(7)}, amf0.ObjectEntry{Key: "audiocodecid", Value: float64(10)},
				amf0.ObjectEntry{Key: "videoTrackIdInfoMap", Value: amf0.Object{}}),
			avc, aacCfg, frame, aacAU}, -1},
		{"multitrack message", []message.Message{av, avc, multi, aacCfg, frame, aacAU}, -1},
		{"Enhanced RTMP HEVC and Opus", []message.Message{av, hevcStart, opusStart, hevcFrame, opusFrame}, 4},
		{"VP9 waits for its key frame", []message.Message{av, vp9Start, opusStart, opusFrame, vp9Inter, vp9Key}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &rtmpProbe{}
			at := -1
			var marker message.Message
			for i, m := range tc.msgs {
				p.inspect(m)
				if mk := p.fast.observe(m, p); mk != nil {
					if marker != nil {
						t.Fatalf("second marker after message %d", i)
					}
					marker, at = mk, i
				}
			}
			if at != tc.at {
				t.Fatalf("marker after message %d, want %d", at, tc.at)
			}
			if marker == nil {
				return
			}
			v, ok := marker.(*message.Video)
			if !ok || v.Type != message.VideoTypeEOS {
				t.Fatalf("marker %#v, want a video end of sequence", marker)
			}
			// The first media message is at 100 ms in every sequence.
			if v.DTS != 100*time.Millisecond+rtmpAnalysis {
				t.Fatalf("marker DTS %v, want %v", v.DTS, 100*time.Millisecond+rtmpAnalysis)
			}
			if _, ok := messageDTS(v); ok {
				t.Fatal("the data tap takes the marker's time as media time")
			}
		})
	}
}

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
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// TestRTMPFastStart publishes, with gortmplib's client and Writer (which
// send onMetaData), the configurations and one frame of each track, then
// nothing: gortmplib alone would wait for 2 s of media before the tracks
// are known. The publication starts anyway, and every frame, the first ones
// included, arrives once with its timestamps, through each of gortmplib's
// video callbacks (which must ignore the marker that ended the analysis).
func TestRTMPFastStart(t *testing.T) {
	aacConfig := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 2}
	aac := &gortmplib.Track{Codec: &rtmpcodecs.MPEG4Audio{Config: &aacConfig}}
	opusTrack := &gortmplib.Track{Codec: &rtmpcodecs.Opus{IDHeader: &opus.IDHeader{Version: 1, ChannelCount: 2, PreSkip: 312}}}
	h264 := &gortmplib.Track{Codec: &rtmpcodecs.H264{SPS: testH264SPS, PPS: testH264PPS}}
	h265 := &gortmplib.Track{Codec: &rtmpcodecs.H265{VPS: testH265VPS, SPS: testH265SPS, PPS: testH265PPS}}
	av1 := &gortmplib.Track{Codec: &rtmpcodecs.AV1{}}
	vp9 := &gortmplib.Track{Codec: &rtmpcodecs.VP9{}}

	// write sends frame i of tr; frame 0 is a key frame.
	write := func(w *gortmplib.Writer, tr *gortmplib.Track, i int) error {
		pts := time.Duration(i) * 40 * time.Millisecond
		key := i == 0
		switch tr {
		case h264:
			nalu := byte(0x41) // non-IDR slice
			if key {
				nalu = 0x65
			}
			return w.WriteH264(tr, pts, pts, [][]byte{{nalu, 0x88, byte(i)}})
		case h265:
			nalu := byte(0x02) // TRAIL_R
			if key {
				nalu = 0x26 // IDR_W_RADL
			}
			return w.WriteH265(tr, pts, pts, [][]byte{{nalu, 0x01, byte(i)}})
		case av1:
			if key {
				return w.WriteAV1(tr, pts, [][]byte{testAV1SequenceHeader, {0x30, byte(i)}})
			}
			return w.WriteAV1(tr, pts, [][]byte{{0x30, byte(i)}})
		case vp9:
			return w.WriteVP9(tr, pts, testVP9KeyFrame)
		case aac:
			return w.WriteMPEG4Audio(tr, pts, []byte{0x21, 0x10, byte(i)})
		case opusTrack:
			return w.WriteOpus(tr, pts, []byte{0xfc, 0xff, byte(i)})
		}
		return fmt.Errorf("unknown track")
	}

	for _, tc := range []struct {
		name         string
		video, audio *gortmplib.Track
	}{
		{"H264 AAC", h264, aac},
		{"H265 Opus", h265, opusTrack},
		{"AV1 AAC", av1, aac},
		{"VP9 Opus", vp9, opusTrack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startTestServer(t, nil)
			w := gortmplibPublisher(t, ts, "/live/fast", tc.video, tc.audio)
			const frames = 6
			send := func(i int) {
				t.Helper()
				for _, tr := range []*gortmplib.Track{tc.video, tc.audio} {
					if err := write(w, tr, i); err != nil {
						t.Fatal(err)
					}
				}
			}
			send(0)
			p := ts.sink.waitPub(t, 0, 5*time.Second)
			for i := 1; i < frames; i++ {
				send(i)
			}
			waitUntil(t, &ts.sink.notifier, 5*time.Second, "every frame", func() bool {
				ts.sink.mu.Lock()
				defer ts.sink.mu.Unlock()
				return len(p.units) >= 2*frames
			}, nil)

			ts.sink.snapshot(func() {
				var cs []codecs.Codec
				for _, tr := range p.info.Tracks {
					cs = append(cs, tr.Codec)
				}
				if len(cs) != 2 || !cs[0].IsVideo() || cs[1].IsVideo() {
					t.Fatalf("tracks %s, want video and audio", dumpCodecs(cs))
				}
				var got, want []string
				for i := range frames {
					pts := time.Duration(i) * 40 * time.Millisecond
					want = append(want, fmt.Sprintf("1 %v %v", pts, pts), fmt.Sprintf("2 %v %v", pts, pts))
				}
				for _, u := range p.units {
					got = append(got, fmt.Sprintf("%d %v %v", u.Track.ID, u.PTS, u.DTS))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("units\n%v\nwant\n%v", got, want)
				}
			})
		})
	}
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

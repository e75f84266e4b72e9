package ingest

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/flac"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// Parameter sets from gortmplib's tests.
var (
	testH264SPS = []byte{
		0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02,
		0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04,
		0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20,
	}
	testH264PPS = []byte{0x68, 0x06, 0x07, 0x08}
	testH265VPS = []byte{
		0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x02, 0x20,
		0x00, 0x00, 0x03, 0x00, 0xb0, 0x00, 0x00, 0x03,
		0x00, 0x00, 0x03, 0x00, 0x7b, 0x18, 0xb0, 0x24,
	}
	testH265SPS = []byte{
		0x42, 0x01, 0x01, 0x02, 0x20, 0x00, 0x00, 0x03,
		0x00, 0xb0, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
		0x00, 0x7b, 0xa0, 0x07, 0x82, 0x00, 0x88, 0x7d,
		0xb6, 0x71, 0x8b, 0x92, 0x44, 0x80, 0x53, 0x88,
		0x88, 0x92, 0xcf, 0x24, 0xa6, 0x92, 0x72, 0xc9,
		0x12, 0x49, 0x22, 0xdc, 0x91, 0xaa, 0x48, 0xfc,
		0xa2, 0x23, 0xff, 0x00, 0x01, 0x00, 0x01, 0x6a,
		0x02, 0x02, 0x02, 0x01,
	}
	testH265PPS = []byte{0x44, 0x01, 0xc0, 0x25, 0x2f, 0x05, 0x32, 0x40}
)

// TestRTMPCodecs publishes each codec with gortmplib's own client (ffmpeg
// 5.1 and gomedia cannot send Enhanced RTMP): supported codecs become
// tracks with the parameters the packager needs, others are refused with
// the codec named, and extra multitrack audio tracks are ignored (extra
// video tracks are variants: TestRTMPMultitrackVariants).
func TestRTMPCodecs(t *testing.T) {
	h264 := &gortmplib.Track{Codec: &rtmpcodecs.H264{SPS: testH264SPS, PPS: testH264PPS}}
	h265 := &gortmplib.Track{Codec: &rtmpcodecs.H265{VPS: testH265VPS, SPS: testH265SPS, PPS: testH265PPS}}
	av1 := &gortmplib.Track{Codec: &rtmpcodecs.AV1{}}
	vp9 := &gortmplib.Track{Codec: &rtmpcodecs.VP9{}}
	aacConfig := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 2}
	aac := &gortmplib.Track{Codec: &rtmpcodecs.MPEG4Audio{Config: &aacConfig}}
	opusTrack := &gortmplib.Track{Codec: &rtmpcodecs.Opus{IDHeader: &opus.IDHeader{Version: 1, ChannelCount: 2, PreSkip: 312}}}
	g711 := &gortmplib.Track{Codec: &rtmpcodecs.G711{ChannelCount: 1}}
	lpcm := &gortmplib.Track{Codec: &rtmpcodecs.LPCM{BitDepth: 16, SampleRate: 44100, ChannelCount: 2}}
	flacTrack := &gortmplib.Track{Codec: &rtmpcodecs.FLAC{StreamInfo: &flac.StreamInfo{
		MinBlockSize: 4096, MaxBlockSize: 4096, SampleRate: 44100, ChannelCount: 2, BitDepth: 16,
	}}}

	write := func(w *gortmplib.Writer, tr *gortmplib.Track, pts time.Duration) error {
		switch tr {
		case h264:
			return w.WriteH264(tr, pts, pts, [][]byte{{0x65, 0x88, 0x84}})
		case h265:
			return w.WriteH265(tr, pts, pts, [][]byte{{0x26, 0x01, 0xaf}})
		case av1:
			return w.WriteAV1(tr, pts, [][]byte{testAV1SequenceHeader, {0x30}})
		case vp9:
			return w.WriteVP9(tr, pts, testVP9KeyFrame)
		case aac:
			return w.WriteMPEG4Audio(tr, pts, []byte{0x21, 0x10, 0x04})
		case opusTrack:
			return w.WriteOpus(tr, pts, []byte{0xfc, 0xff, 0xfe})
		case g711:
			return w.WriteG711(tr, pts, make([]byte, 160))
		case lpcm:
			return w.WriteLPCM(tr, pts, make([]byte, 400))
		case flacTrack:
			return w.WriteFLAC(tr, pts, []byte{0xff, 0xf8, 0x69, 0x18, 0x00, 0x00})
		}
		panic("unknown track")
	}

	for _, tc := range []struct {
		name     string
		tracks   []*gortmplib.Track
		want     []codecs.Codec // nil: refused
		logLines [][]string
	}{
		{"H265", []*gortmplib.Track{h265}, []codecs.Codec{&codecs.H265{VPS: testH265VPS, SPS: testH265SPS, PPS: testH265PPS}}, nil},
		{"AV1 + Opus", []*gortmplib.Track{av1, opusTrack}, []codecs.Codec{
			&codecs.AV1{SequenceHeader: testAV1SequenceHeader}, &codecs.Opus{ChannelCount: 2},
		}, nil},
		{"VP9", []*gortmplib.Track{vp9}, []codecs.Codec{
			&codecs.VP9{Width: 1920, Height: 804, BitDepth: 8, ChromaSubsampling: 1},
		}, nil},
		{"multitrack keeps the first audio", []*gortmplib.Track{h264, h265, aac, opusTrack}, []codecs.Codec{
			&codecs.H264{SPS: testH264SPS, PPS: testH264PPS}, &codecs.MPEG4Audio{Config: decodedASC(t, aacConfig)},
		}, [][]string{{"publishing variant", "variant=540p"}, {"ignoring extra track", "codec=Opus"}}},
		{"G711", []*gortmplib.Track{h264, g711}, nil, [][]string{{"publish refused", "unsupported codec: G.711 A-law"}}},
		{"LPCM", []*gortmplib.Track{lpcm}, nil, [][]string{{"publish refused", "unsupported codec: LPCM"}}},
		{"FLAC", []*gortmplib.Track{flacTrack}, nil, [][]string{{"publish refused", "unsupported codec: FLAC"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startTestServer(t, nil)
			name := strings.NewReplacer(" ", "-", "+", "").Replace(tc.name)
			w := gortmplibPublisher(t, ts, "/live/"+name, tc.tracks...)
			// 2.5s of media: gortmplib reads 2s ahead to find the tracks.
			for pts := time.Duration(0); pts <= 2500*time.Millisecond; pts += 40 * time.Millisecond {
				for _, tr := range tc.tracks {
					if err := write(w, tr, pts); err != nil {
						if tc.want == nil {
							break // refused: the server may be gone
						}
						t.Fatal(err)
					}
				}
			}

			for _, l := range tc.logLines {
				ts.logs.waitLine(t, 5*time.Second, l...)
			}
			if tc.want == nil {
				if n := ts.sink.numPubs(); n != 0 {
					t.Fatalf("Sink got %d publications", n)
				}
				return
			}

			p := ts.sink.waitPub(t, 0, 5*time.Second)
			waitUntil(t, &ts.sink.notifier, 5*time.Second, "units of every track", func() bool {
				ts.sink.mu.Lock()
				defer ts.sink.mu.Unlock()
				seen := map[int]bool{}
				for _, u := range p.units {
					seen[u.Track.ID] = true
				}
				return len(seen) == len(tc.want)
			}, nil)
			ts.sink.snapshot(func() {
				var got []codecs.Codec
				for i, tr := range p.info.Tracks {
					if tr.ID != i+1 {
						t.Fatalf("track %d has ID %d", i, tr.ID)
					}
					got = append(got, tr.Codec)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("tracks %s, want %s", dumpCodecs(got), dumpCodecs(tc.want))
				}
				for _, u := range p.units {
					if u.Track.Codec.IsVideo() == (len(u.AU) == 0) || u.Track.Codec.IsVideo() == (len(u.Frame) != 0) {
						t.Fatalf("unit of track %d: %d NALUs/OBUs, %d frame bytes", u.Track.ID, len(u.AU), len(u.Frame))
					}
				}
			})
		})
	}
}

// TestRTMPMultitrackVariants: an Enhanced RTMP connection with several
// video tracks, as OBS's Enhanced Broadcasting sends, publishes the largest
// picture with the audio as the source, then every other video track as a
// variant named from its height, whose units go to its own publication.
func TestRTMPMultitrackVariants(t *testing.T) {
	small := &gortmplib.Track{Codec: &rtmpcodecs.H265{VPS: testH265VPS, SPS: testH265SPS, PPS: testH265PPS}} // 540 lines
	large := &gortmplib.Track{Codec: &rtmpcodecs.H264{SPS: testH264SPS, PPS: testH264PPS}}                   // 1080 lines
	aacConfig := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 2}
	aac := &gortmplib.Track{Codec: &rtmpcodecs.MPEG4Audio{Config: &aacConfig}}
	ts := startTestServer(t, nil)
	w := gortmplibPublisher(t, ts, "/live/multi", small, large, aac)
	for pts := time.Duration(0); pts <= 2500*time.Millisecond; pts += 40 * time.Millisecond {
		for _, err := range []error{
			w.WriteH265(small, pts, pts, [][]byte{{0x26, 0x01, 0xaf}}),
			w.WriteH264(large, pts, pts, [][]byte{{0x65, 0x88, 0x84}}),
			w.WriteMPEG4Audio(aac, pts, []byte{0x21, 0x10, 0x04}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	src := ts.sink.waitPub(t, 0, 5*time.Second)
	v := ts.sink.waitPub(t, 1, 5*time.Second)
	waitUntil(t, &ts.sink.notifier, 5*time.Second, "units of the variant", func() bool {
		ts.sink.mu.Lock()
		defer ts.sink.mu.Unlock()
		return len(v.units) > 10
	}, nil)
	ts.sink.snapshot(func() {
		if src.info.Variant != "" || len(src.info.Tracks) != 2 || !reflect.DeepEqual(src.info.Tracks[0].Codec, &codecs.H264{SPS: testH264SPS, PPS: testH264PPS}) {
			t.Fatalf("source: variant %q, tracks %s", src.info.Variant, dumpCodecs([]codecs.Codec{src.info.Tracks[0].Codec}))
		}
		if v.info.Variant != "540p" || v.info.Name != src.info.Name || len(v.info.Tracks) != 1 || v.info.Tracks[0].ID != 1 {
			t.Fatalf("variant %+v", v.info)
		}
		if _, ok := v.info.Tracks[0].Codec.(*codecs.H265); !ok {
			t.Fatalf("variant codec %T", v.info.Tracks[0].Codec)
		}
		for _, u := range v.units {
			if u.Track != v.info.Tracks[0] || len(u.AU) == 0 {
				t.Fatalf("variant unit of track %v", u.Track)
			}
		}
		for _, u := range src.units {
			if u.Track.Codec.IsVideo() && u.AU[0][0] != 0x65 {
				t.Fatalf("a variant's frame reached the source: %x", u.AU[0])
			}
		}
	})
}

func TestVariantName(t *testing.T) {
	used := map[string]bool{}
	for _, tt := range []struct {
		h    int
		want string
	}{{480, "480p"}, {360, "360p"}, {480, "480p-2"}, {480, "480p-3"}, {0, "video"}, {0, "video-2"}} {
		if got := variantName(tt.h, used); got != tt.want {
			t.Errorf("variantName(%d) = %q, want %q", tt.h, got, tt.want)
		}
	}
}

// TestRTMPPlayRefused checks that a player is told no and logged: viewers
// use HLS.
func TestRTMPPlayRefused(t *testing.T) {
	ts := startTestServer(t, nil)
	u, err := url.Parse(ts.url("/live/shop-1"))
	if err != nil {
		t.Fatal(err)
	}
	c := &gortmplib.Client{URL: u, Publish: false}
	err = c.Initialize(testContext(t, 10*time.Second))
	if err == nil {
		c.Close()
		t.Fatal("play accepted")
	}
	ts.logs.waitLine(t, 5*time.Second, "play refused", "proto=rtmp", "remote=")
	if n := ts.sink.numPubs(); n != 0 {
		t.Fatalf("Sink got %d publications", n)
	}
}

func dumpCodecs(cs []codecs.Codec) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%T%+v ", c, c)
	}
	return b.String()
}

// decodedASC returns c as the server gets it from the publisher's sequence
// header: mediacommon's decoder also fills the deprecated ChannelCount.
func decodedASC(t testing.TB, c mpeg4audio.AudioSpecificConfig) mpeg4audio.AudioSpecificConfig {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var out mpeg4audio.AudioSpecificConfig
	if err := out.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return out
}

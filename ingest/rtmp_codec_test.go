package ingest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// testAV1SequenceHeader is an AV1 sequence header OBU without size field
// (from gohlslib's tests).
var testAV1SequenceHeader = []byte{8, 0, 0, 0, 66, 167, 191, 230, 46, 223, 200, 66}

// testVP9KeyFrame starts a 1920x804 VP9 key frame (from mediacommon's tests).
var testVP9KeyFrame = []byte{
	0x82, 0x49, 0x83, 0x42, 0x00, 0x77, 0xf0, 0x32,
	0x34, 0x30, 0x38, 0x24, 0x1c, 0x19, 0x40, 0x18,
	0x03, 0x40, 0x5f, 0xb4,
}

func mustAV1Bitstream(t *testing.T, obus ...[]byte) []byte {
	t.Helper()
	b, err := av1.Bitstream(obus).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConvertRTMPCodec(t *testing.T) {
	aac := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}

	av1Probe := &rtmpProbe{}
	av1Probe.inspect(&message.VideoExFramesX{
		FourCC:  message.FourCCAV1,
		Payload: mustAV1Bitstream(t, testAV1SequenceHeader, []byte{0x32, 0x00}),
	})
	vp9Probe := &rtmpProbe{}
	vp9Probe.inspect(&message.VideoExMultitrack{TrackID: 0, Wrapped: &message.VideoExCodedFrames{
		FourCC:  message.FourCCVP9,
		Payload: testVP9KeyFrame,
	}})

	for _, tc := range []struct {
		name    string
		in      rtmpcodecs.Codec
		probe   *rtmpProbe
		want    codecs.Codec
		wantErr string
	}{
		{"H264", &rtmpcodecs.H264{SPS: []byte{0x67, 1}, PPS: []byte{0x68, 2}}, nil,
			&codecs.H264{SPS: []byte{0x67, 1}, PPS: []byte{0x68, 2}}, ""},
		{"H264 without PPS", &rtmpcodecs.H264{SPS: []byte{0x67}}, nil, nil, "without SPS or PPS"},
		{"H265", &rtmpcodecs.H265{VPS: []byte{0x40}, SPS: []byte{0x42}, PPS: []byte{0x44}}, nil,
			&codecs.H265{VPS: []byte{0x40}, SPS: []byte{0x42}, PPS: []byte{0x44}}, ""},
		{"AV1 from key frame", &rtmpcodecs.AV1{}, av1Probe,
			&codecs.AV1{SequenceHeader: testAV1SequenceHeader}, ""},
		{"AV1 without sequence header", &rtmpcodecs.AV1{}, &rtmpProbe{}, nil, "AV1 without a sequence header"},
		{"VP9 from key frame", &rtmpcodecs.VP9{}, vp9Probe,
			&codecs.VP9{Width: 1920, Height: 804, BitDepth: 8, ChromaSubsampling: 1}, ""},
		{"VP9 without key frame", &rtmpcodecs.VP9{}, &rtmpProbe{}, nil, "VP9 without a key frame"},
		{"AAC", &rtmpcodecs.MPEG4Audio{Config: &aac}, nil, &codecs.MPEG4Audio{Config: aac}, ""},
		{"AAC without config", &rtmpcodecs.MPEG4Audio{}, nil, nil, "without AudioSpecificConfig"},
		{"Opus", &rtmpcodecs.Opus{IDHeader: &opus.IDHeader{ChannelCount: 1}}, nil, &codecs.Opus{ChannelCount: 1}, ""},
		{"Opus without header", &rtmpcodecs.Opus{}, nil, &codecs.Opus{ChannelCount: 2}, ""},
		{"MP3", &rtmpcodecs.MPEG1Audio{}, nil, nil, "unsupported codec: MPEG-1 Audio (MP3)"},
		{"AC-3", &rtmpcodecs.AC3{}, nil, nil, "unsupported codec: AC-3"},
		{"G711 A-law", &rtmpcodecs.G711{}, nil, nil, "unsupported codec: G.711 A-law"},
		{"G711 mu-law", &rtmpcodecs.G711{MULaw: true}, nil, nil, "unsupported codec: G.711 mu-law"},
		{"LPCM", &rtmpcodecs.LPCM{}, nil, nil, "unsupported codec: LPCM"},
		{"FLAC", &rtmpcodecs.FLAC{}, nil, nil, "unsupported codec: FLAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probe := tc.probe
			if probe == nil {
				probe = &rtmpProbe{}
			}
			got, err := convertRTMPCodec(tc.in, probe)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if strings.HasPrefix(tc.wantErr, "unsupported") && !errors.Is(err, ErrUnsupportedCodec) {
					t.Fatalf("error %v is not ErrUnsupportedCodec", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestProbeAV1ConfigFallback(t *testing.T) {
	// A sequence start whose configOBUs carry the sequence header is used
	// when no key frame brought one; a key frame's wins over it.
	p := &rtmpProbe{}
	p.inspect(&message.VideoExSequenceStart{
		FourCC:    message.FourCCAV1,
		AV1Config: nil,
	})
	if p.av1() != nil {
		t.Fatal("sequence header from nothing")
	}

	inband := append([]byte(nil), testAV1SequenceHeader...)
	inband[len(inband)-1] ^= 0xff
	cfg := mustAV1Bitstream(t, testAV1SequenceHeader)
	p = &rtmpProbe{}
	p.av1Config = map[uint8][]byte{0: av1SequenceHeader(cfg)}
	if !reflect.DeepEqual(p.av1(), testAV1SequenceHeader) {
		t.Fatalf("config fallback = %x", p.av1())
	}
	p.inspect(&message.VideoExCodedFrames{FourCC: message.FourCCAV1, Payload: mustAV1Bitstream(t, inband)})
	if !reflect.DeepEqual(p.av1(), inband) {
		t.Fatalf("in-band header not preferred: %x", p.av1())
	}
}

func TestDataFromAMF(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []any
		want    *Data
	}{
		{"onMetaData", []any{"@setDataFrame", "onMetaData", amf0.ECMAArray{{Key: "width", Value: 640.0}}}, nil},
		{"bare onMetaData", []any{"onMetaData", amf0.Object{}}, nil},
		{"empty", nil, nil},
		{"name not a string", []any{1.0}, nil},
		{"onCuePoint", []any{"onCuePoint", amf0.Object{
			{Key: "name", Value: "product"},
			{Key: "time", Value: 1.5},
			{Key: "parameters", Value: amf0.ECMAArray{{Key: "sku", Value: "sku-42"}}},
			{Key: "flags", Value: amf0.StrictArray{true, nil, amf0.Undefined{}}},
		}}, &Data{Name: "onCuePoint", Time: 2 * time.Second, Values: []any{map[string]any{
			"name":       "product",
			"time":       1.5,
			"parameters": map[string]any{"sku": "sku-42"},
			"flags":      []any{true, nil, nil},
		}}}},
		{"onTextData under @setDataFrame", []any{"@setDataFrame", "onTextData", amf0.Object{{Key: "text", Value: "hi"}}},
			&Data{Name: "onTextData", Time: 2 * time.Second, Values: []any{map[string]any{"text": "hi"}}}},
		{"no values", []any{"onPing"}, &Data{Name: "onPing", Time: 2 * time.Second, Values: []any{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := dataFromAMF(tc.payload, 2*time.Second)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestConvertAMFDepth(t *testing.T) {
	var v any = "leaf"
	for range maxAMFDepth + 10 {
		v = amf0.StrictArray{v}
	}
	// Does not recurse without bound; the deep end is cut to nil.
	out := convertAMF(v)
	depth := 0
	for {
		a, ok := out.([]any)
		if !ok {
			break
		}
		out = a[0]
		depth++
	}
	if depth > maxAMFDepth+1 || out != nil {
		t.Fatalf("depth %d, leaf %v", depth, out)
	}
}

func TestParamSets(t *testing.T) {
	sps, pps := []byte{0x67, 1}, []byte{0x68, 2}
	sps2 := []byte{0x67, 9}
	idr, p := []byte{0x65, 0xaa}, []byte{0x41, 0xbb}

	ps := &paramSets{isParam: isH264ParamSet, current: [][]byte{sps, pps}}
	steps := []struct {
		in, want [][]byte
	}{
		{[][]byte{sps, pps}, nil},                          // the opening sequence header: known, dropped
		{[][]byte{sps, pps, idr}, [][]byte{sps, pps, idr}}, // in band with a frame: kept
		{[][]byte{p}, [][]byte{p}},
		{[][]byte{sps2, pps}, nil},                // new parameters: held...
		{[][]byte{idr}, [][]byte{sps2, pps, idr}}, // ...and put in front of the next frame
		{[][]byte{p}, [][]byte{p}},                // only once
		{[][]byte{sps2, pps}, nil},                // repeated: dropped
		{[][]byte{p}, [][]byte{p}},
	}
	for i, s := range steps {
		got := ps.filter(s.in)
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: filter(%x) = %x, want %x", i, s.in, got, s.want)
		}
	}

	if !isH265ParamSet([]byte{0x40, 0x01}) || !isH265ParamSet([]byte{0x44, 0x01}) || isH265ParamSet([]byte{0x26, 0x01}) || isH265ParamSet(nil) {
		t.Fatal("isH265ParamSet")
	}
}

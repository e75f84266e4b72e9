package ingest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// TestRTSPTrackParams: parameter sets from the SDP are put in front of key
// frames that lack them, in-band ones replace the SDP's, and the codec
// follows the latest.
func TestRTSPTrackParams(t *testing.T) {
	var (
		sdpSPS = []byte{0x67, 1}
		sdpPPS = []byte{0x68, 1}
		newSPS = []byte{0x67, 2}
		newPPS = []byte{0x68, 2}
		aud    = []byte{0x09, 0xf0}
		sei    = []byte{0x06, 5}
		idr    = []byte{0x65, 0x88}
		p      = []byte{0x41, 0x9a}

		vps  = []byte{32 << 1, 1, 1}
		hsps = []byte{33 << 1, 1, 1}
		hpps = []byte{34 << 1, 1, 1}
		haud = []byte{35 << 1, 1, 0x50}
		cra  = []byte{21 << 1, 1, 0xaf}
		trl  = []byte{1 << 1, 1, 0xaf}
	)
	h264 := func(sps, pps []byte) format.Format {
		return &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
	}
	cases := []struct {
		name string
		f    format.Format
		in   [][][]byte // access units in order
		want [][]byte   // the last one as the Sink gets it
		sps  []byte     // in the codec after the last unit
		pps  []byte
	}{
		{"SDP params in front of IDR", h264(sdpSPS, sdpPPS), [][][]byte{{idr}},
			[][]byte{sdpSPS, sdpPPS, idr}, sdpSPS, sdpPPS},
		{"after the AUD", h264(sdpSPS, sdpPPS), [][][]byte{{aud, sei, idr}},
			[][]byte{aud, sdpSPS, sdpPPS, sei, idr}, sdpSPS, sdpPPS},
		{"in-band params replace the SDP's", h264(sdpSPS, sdpPPS), [][][]byte{{newSPS, newPPS, idr}},
			[][]byte{newSPS, newPPS, idr}, newSPS, newPPS},
		{"in-band params before the IDR", h264(sdpSPS, sdpPPS), [][][]byte{{newSPS, newPPS}, {idr}},
			[][]byte{newSPS, newPPS, idr}, newSPS, newPPS},
		{"partial in-band set completed in order", h264(sdpSPS, sdpPPS), [][][]byte{{newPPS, idr}},
			[][]byte{sdpSPS, newPPS, idr}, sdpSPS, newPPS},
		{"non-key frames untouched", h264(sdpSPS, sdpPPS), [][][]byte{{p}},
			[][]byte{p}, sdpSPS, sdpPPS},
		{"no params anywhere", h264(nil, nil), [][][]byte{{idr}},
			[][]byte{idr}, nil, nil},
		{"H.265 VPS, SPS, PPS after the AUD", &format.H265{PayloadTyp: 96, VPS: vps, SPS: hsps, PPS: hpps},
			[][][]byte{{haud, cra}}, [][]byte{haud, vps, hsps, hpps, cra}, hsps, hpps},
		{"H.265 trailing picture untouched", &format.H265{PayloadTyp: 96, VPS: vps, SPS: hsps, PPS: hpps},
			[][][]byte{{trl}}, [][]byte{trl}, hsps, hpps},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newRTSPTrack(&description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{tc.f}})
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for _, au := range tc.in {
				got = tr.withParams(au)
			}
			if !slices.EqualFunc(got, tc.want, bytes.Equal) {
				t.Errorf("access unit %x, want %x", got, tc.want)
			}
			var sps, pps []byte
			switch c := tr.codec().(type) {
			case *codecs.H264:
				sps, pps = c.SPS, c.PPS
			case *codecs.H265:
				sps, pps = c.SPS, c.PPS
			case nil:
			default:
				t.Fatalf("codec %T", c)
			}
			if !bytes.Equal(sps, tc.sps) || !bytes.Equal(pps, tc.pps) {
				t.Errorf("codec SPS %x PPS %x, want %x %x", sps, pps, tc.sps, tc.pps)
			}
		})
	}
}

// TestRTSPTrackUnsupported names the codecs it cannot take.
func TestRTSPTrackUnsupported(t *testing.T) {
	_, err := newRTSPTrack(&description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{
		&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1},
		&format.MPEG1Audio{},
		&format.H264{PayloadTyp: 96, PacketizationMode: 2},
	}})
	if err == nil || err.Error() != "unsupported codec: G711, MPEG-1/2 Audio, H264 (PacketizationMode >= 2 is not supported)" {
		t.Errorf("error %v", err)
	}
}

package ingest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/pion/rtp"
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

// latmMedia parses the SDP media of an MP4A-LATM publisher.
func latmMedia(t *testing.T, rtpmap, fmtp string) *description.Media {
	t.Helper()
	text := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 0 RTP/AVP 96\r\na=rtpmap:96 " + rtpmap + "\r\na=fmtp:96 " + fmtp + "\r\na=control:stream=0\r\n"
	var ssd sdp.SessionDescription
	if err := ssd.Unmarshal([]byte(text)); err != nil {
		t.Fatal(err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&ssd); err != nil {
		t.Fatal(err)
	}
	return desc.Medias[0]
}

// TestRTSPTrackLATM: AAC in MP4A-LATM (RFC 6416) becomes AAC frames with the
// AudioSpecificConfig of the StreamMuxConfig, from the SDP as GStreamer's
// rtspclientsink sends it (cpresent=0, with the SBR sync extension that
// avenc_aac signals), or in band (cpresent=1).
func TestRTSPTrackLATM(t *testing.T) {
	au := bytes.Repeat([]byte{0x21, 0x1b}, 150) // 300 bytes
	// PayloadLengthInfo (ISO 14496-3 1.7.3): the length in bytes of 255 and
	// a last byte below 255.
	element := append([]byte{255, 300 - 255}, au...)
	gstASC := mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelConfig: 1}

	inBandCfg := &mpeg4audio.StreamMuxConfig{Programs: []*mpeg4audio.StreamMuxConfigProgram{{
		Layers: []*mpeg4audio.StreamMuxConfigLayer{{AudioSpecificConfig: &mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2}, LatmBufferFullness: 255}},
	}}}
	withConfig, err := mpeg4audio.AudioMuxElement{MuxConfigPresent: true, StreamMuxConfig: inBandCfg,
		Payloads: [][][][]byte{{{au}}}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sameConfig, err := mpeg4audio.AudioMuxElement{MuxConfigPresent: true, UseSameStreamMux: true, StreamMuxConfig: inBandCfg,
		Payloads: [][][][]byte{{{au}}}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name         string
		rtpmap, fmtp string
		packets      [][]byte // payloads, the last of each element with the marker bit
		markers      []bool
		frames       int   // AAC frames out
		step         int64 // RTP timestamp step per packet
		ptsStep      time.Duration
		codecBefore  bool // the codec is known before the first packet
		rate         int
	}{
		{"GStreamer config in the SDP", "MP4A-LATM/44100/1", "cpresent=0;config=40002410adca00",
			[][]byte{element, element}, []bool{true, true}, 2, 1024, 1024 * time.Second / 44100, true, 44100},
		{"element over two packets", "MP4A-LATM/44100/1", "cpresent=0;config=40002410adca00",
			[][]byte{element[:100], element[100:]}, []bool{false, true}, 1, 1024, 0, true, 44100},
		{"config in band", "MP4A-LATM/90000/1", "cpresent=1",
			[][]byte{withConfig, sameConfig}, []bool{true, true}, 2, 1920, 1920 * time.Second / 90000, false, 48000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newRTSPTrack(latmMedia(t, tc.rtpmap, tc.fmtp))
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.codec() != nil; got != tc.codecBefore {
				t.Fatalf("codec known before the first packet: %v", got)
			}
			var units []rtspUnit
			for i, payload := range tc.packets {
				ts := uint32(1000 + int64(i)*tc.step)
				pkt := &rtp.Packet{Header: rtp.Header{Marker: tc.markers[i], SequenceNumber: uint16(i), Timestamp: ts}, Payload: payload}
				us, err := tr.decode(pkt, rtspTime{ts: ts, pts: int64(i) * tc.step, ok: true})
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				units = append(units, us...)
			}
			if len(units) != tc.frames {
				t.Fatalf("%d frames, want %d", len(units), tc.frames)
			}
			for i, u := range units {
				if !bytes.Equal(u.frame, au) {
					t.Errorf("frame %d: %d bytes %x..., want the 300-byte AU", i, len(u.frame), u.frame[:min(4, len(u.frame))])
				}
				if i > 0 {
					if d := tr.duration(u.pts - units[i-1].pts); d != tc.ptsStep {
						t.Errorf("frame %d: %v after the previous one, want %v", i, d, tc.ptsStep)
					}
				}
			}
			c, ok := tr.codec().(*codecs.MPEG4Audio)
			if !ok || c.Config.Type != mpeg4audio.ObjectTypeAACLC || c.Config.SampleRate != tc.rate {
				t.Fatalf("codec %#v", tr.codec())
			}
			if tc.rate == 44100 && c.Config.ChannelConfig != gstASC.ChannelConfig {
				t.Errorf("channel configuration %d, want %d", c.Config.ChannelConfig, gstASC.ChannelConfig)
			}
		})
	}

	t.Run("undecodable element", func(t *testing.T) {
		tr, err := newRTSPTrack(latmMedia(t, "MP4A-LATM/44100/1", "cpresent=0;config=40002410adca00"))
		if err != nil {
			t.Fatal(err)
		}
		// A length longer than the element: a wrong frame length type or a
		// damaged packet.
		pkt := &rtp.Packet{Header: rtp.Header{Marker: true}, Payload: []byte{200, 1, 2, 3}}
		if us, err := tr.decode(pkt, rtspTime{ok: true}); err == nil || len(us) != 0 {
			t.Errorf("units %v, error %v", us, err)
		}
	})
}

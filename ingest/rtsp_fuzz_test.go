package ingest

import (
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// A 640x360 High profile SPS and its PPS, from x264.
var (
	fuzzSPS = []byte{0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
		0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96}
	fuzzPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
)

// FuzzRTSPTrack feeds arbitrary RTP payloads, marker bits and timestamps to
// every supported depacketizer (LATM's audioMuxElement parsing too), DTS
// extractor and the parameter set and timestamp handling around them: a
// publisher's packets must never panic the server.
//
// The input is a sequence of packets: a flags byte (bit 0 marker, bits 1-3
// timestamp step in frames), a length byte, then the payload.
func FuzzRTSPTrack(f *testing.F) {
	seed := func(pkts ...[]byte) []byte {
		var b []byte
		for i, p := range pkts {
			b = append(b, byte(1|(i%2)<<1), byte(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f.Add(seed(fuzzSPS, fuzzPPS, []byte{0x65, 0x88, 0x84, 0x00}, []byte{0x41, 0x9a, 0x00}))
	f.Add(seed([]byte{0x18, 0x00, 0x02, 0x67, 0x64, 0x00, 0x02, 0x68, 0xeb}, []byte{0x7c, 0x85, 0x88}, []byte{0x7c, 0x45, 0x84}))
	f.Add(seed([]byte{0x40, 0x01, 0x0c}, []byte{0x62, 0x01, 0x93, 0xaf}, []byte{0x62, 0x01, 0x53, 0xaf}, []byte{0x26, 0x01, 0xaf}))
	f.Add(seed([]byte{0x00, 0x10, 0x00, 0x10, 0x21, 0x10}, []byte{0xfc, 0xff, 0x01}))
	// LATM: an audioMuxElement of a 4-byte frame, and one with an in-band
	// StreamMuxConfig (AAC-LC 48 kHz stereo) before it.
	f.Add(seed([]byte{0x04, 0x21, 0x1b, 0x21, 0x1b}))
	f.Add(seed([]byte{0x20, 0x00, 0x11, 0x90, 0x3f, 0xc0, 0x08, 0x42, 0x36, 0x42, 0x36}))

	f.Fuzz(fuzzRTSPTrackOnce)
}

// fuzzRTSPTrackOnce runs one input through every kind of track.
func fuzzRTSPTrackOnce(t *testing.T, data []byte) {
	formats := []format.Format{
		&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: fuzzSPS, PPS: fuzzPPS},
		&format.H264{PayloadTyp: 96, PacketizationMode: 1},
		&format.H265{PayloadTyp: 96},
		&format.MPEG4Audio{PayloadTyp: 97, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
			Config: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2}},
		&format.MPEG4AudioLATM{PayloadTyp: 97, StreamMuxConfig: &mpeg4audio.StreamMuxConfig{
			Programs: []*mpeg4audio.StreamMuxConfigProgram{{Layers: []*mpeg4audio.StreamMuxConfigLayer{{
				AudioSpecificConfig: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelConfig: 1},
			}}}}}},
		&format.MPEG4AudioLATM{PayloadTyp: 97, CPresent: true},
		&format.Opus{PayloadTyp: 97, ChannelCount: 2},
	}
	for _, fo := range formats {
		tr, err := newRTSPTrack(&description.Media{Formats: []format.Format{fo}})
		if err != nil {
			t.Fatal(err)
		}
		buf := data
		var ts uint32
		var pts int64
		for seq := uint16(0); len(buf) >= 2; seq++ {
			flags, n := buf[0], int(buf[1])
			buf = buf[2:]
			n = min(n, len(buf))
			payload := append([]byte(nil), buf[:n]...)
			buf = buf[n:]
			step := uint32(flags>>1&0b111) * 3000
			ts += step
			pts += int64(step)
			pkt := &rtp.Packet{Header: rtp.Header{Marker: flags&1 != 0, SequenceNumber: seq, Timestamp: ts}, Payload: payload}
			units, _ := tr.decode(pkt, rtspTime{ts: ts, pts: pts, ok: true})
			for i := range units {
				if tr.video && len(units[i].au) == 0 {
					t.Fatal("empty access unit")
				}
				_ = tr.unit(&units[i])
			}
			_ = tr.codec()
		}
	}
}

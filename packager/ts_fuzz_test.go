package packager

import (
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// FuzzTSAnnexB feeds the sample converter arbitrary length-prefixed data:
// it errors or returns Annex-B that starts with an AUD, and never panics.
func FuzzTSAnnexB(f *testing.F) {
	avcc, _ := h264.AVCC([][]byte{testSPS, testPPS, {0x65, 1, 2}}).Marshal()
	f.Add(avcc, true, false)
	f.Add([]byte{0, 0, 0, 9, 1}, false, true)
	f.Fuzz(func(t *testing.T, b []byte, key, h265 bool) {
		tt := &tsTrack{es: &tsES{streamType: tsStreamTypeH264}, sps: testSPS, pps: testPPS}
		if h265 {
			tt.es.streamType = tsStreamTypeH265
		}
		out, err := tt.annexB(nil, b, key)
		if err == nil && (len(out) < 5 || string(out[:4]) != "\x00\x00\x00\x01") {
			t.Fatalf("output % x", out)
		}
	})
}

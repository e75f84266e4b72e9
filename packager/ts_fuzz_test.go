package packager

import (
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// FuzzEmsgID3 feeds the emsg reader arbitrary boxes: it returns a slice of
// its input or nil, and never panics.
func FuzzEmsgID3(f *testing.F) {
	box, _ := testEmsg(testID3(`{"id":"a"}`), 1)(90000, 1234)
	f.Add(box)
	f.Add([]byte("\x00\x00\x00\x0cemsg\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tag := emsgID3(b); len(tag) > len(b) {
			t.Fatal("tag longer than the box")
		}
	})
}

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

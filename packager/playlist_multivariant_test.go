package packager

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// TestMultivariant checks the variant as gohlslib reads it: CODECS from the
// SPS and the AudioSpecificConfig, RESOLUTION from the SPS, FRAME-RATE,
// BANDWIDTH and AVERAGE-BANDWIDTH measured over the segments in the window.
func TestMultivariant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fps     int
		payload int // bytes per video frame
	}{
		{24, 3000}, {25, 500}, {30, 6000}, {50, 2000}, {60, 4000},
	} {
		t.Run(fmt.Sprintf("%dfps_%dB", tc.fps, tc.payload), func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, Config{})
			sy := publish(t, m, func(s *synth) { s.fps, s.gop, s.payload = tc.fps, 2*tc.fps, tc.payload })
			sy.frames(12 * tc.fps)
			body := mustFetch(t, m, fileReq("index.m3u8")).Body
			pl, err := playlist.Unmarshal(body)
			if err != nil {
				t.Fatalf("gohlslib: %v\n%s", err, body)
			}
			mv, ok := pl.(*playlist.Multivariant)
			if !ok || len(mv.Variants) != 1 {
				t.Fatalf("want one variant:\n%s", body)
			}
			v := mv.Variants[0]
			if !slices.Equal(v.Codecs, []string{"avc1.64001e", "mp4a.40.2"}) {
				t.Errorf("CODECS %q", v.Codecs)
			}
			if v.Resolution != "640x360" {
				t.Errorf("RESOLUTION %q", v.Resolution)
			}
			if v.FrameRate == nil || math.Abs(*v.FrameRate-float64(tc.fps)) > 0.05 {
				t.Errorf("FRAME-RATE %v, want %d", v.FrameRate, tc.fps)
			}
			if v.URI != "stream.m3u8" {
				t.Errorf("URI %q", v.URI)
			}
			// Measure the window as a client would: segment sizes over
			// their EXTINF durations.
			mp := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, m.Config())
			var peak, bits, secs float64
			for _, seg := range mp.Segments {
				size := len(mustFetch(t, m, fileReq(seg.URI)).Body)
				rate := float64(size*8) / seg.Duration.Seconds()
				peak = max(peak, rate)
				bits += float64(size * 8)
				secs += seg.Duration.Seconds()
			}
			avg := bits / secs
			if v.AverageBandwidth == nil {
				t.Fatal("no AVERAGE-BANDWIDTH")
			}
			if v.Bandwidth < *v.AverageBandwidth {
				t.Errorf("BANDWIDTH %d < AVERAGE-BANDWIDTH %d", v.Bandwidth, *v.AverageBandwidth)
			}
			if math.Abs(float64(v.Bandwidth)-peak) > peak/1000 {
				t.Errorf("BANDWIDTH %d, measured peak %.0f", v.Bandwidth, peak)
			}
			if math.Abs(float64(*v.AverageBandwidth)-avg) > avg/1000 {
				t.Errorf("AVERAGE-BANDWIDTH %d, measured %.0f", *v.AverageBandwidth, avg)
			}
			if want := float64(tc.payload*8*tc.fps) + 48000/1024*200*8; avg < want*0.95 || avg > want*1.2 {
				t.Errorf("AVERAGE-BANDWIDTH %.0f for a %.0f b/s stream", avg, want)
			}
		})
	}
}

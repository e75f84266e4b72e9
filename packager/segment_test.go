package packager

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestSegments checks segmentation: segments start on a keyframe, last the
// configured target duration when the keyframe interval allows and wait for
// the next keyframe when it does not, and EXT-X-TARGETDURATION is the same
// in every playlist and never below a rounded EXTINF.
func TestSegments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		target  time.Duration // Config.TargetDuration; 0 for the default
		fps     int
		gop     int // frames
		rounded bool
		td      int           // EXT-X-TARGETDURATION
		seg     time.Duration // every EXTINF
	}{
		{"default_2s_gop", 0, 30, 60, true, 2, 2 * time.Second},
		{"default_1s_gop", 0, 30, 30, true, 2, 2 * time.Second},
		{"default_4s_gop", 0, 30, 120, true, 4, 4 * time.Second},
		{"default_3s_gop", 0, 25, 75, false, 3, 3 * time.Second},
		{"default_2.5s_gop_ms", 0, 30, 75, true, 3, 2500 * time.Millisecond},
		{"default_2.5s_gop_exact", 0, 24, 60, false, 3, 2500 * time.Millisecond},
		{"default_2.4s_gop", 0, 30, 72, true, 2, 2400 * time.Millisecond},
		{"config_4s_2s_gop", 4 * time.Second, 30, 60, true, 4, 4 * time.Second},
		{"config_1s", time.Second, 60, 60, true, 1, time.Second},
		{"config_6s_3s_gop", 6 * time.Second, 30, 90, false, 6, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, Config{TargetDuration: tc.target})
			sy := publish(t, m, func(s *synth) { s.fps, s.gop, s.msRounding = tc.fps, tc.gop, tc.rounded })
			rec := newRecorder(t, m)
			frames := int(4*tc.seg*time.Duration(tc.fps)/time.Second) + tc.fps/2
			rec.write(sy, frames)

			if rec.td != tc.td {
				t.Errorf("EXT-X-TARGETDURATION %d, want %d", rec.td, tc.td)
			}
			if len(rec.segs) < 4 {
				t.Fatalf("%d segments", len(rec.segs))
			}
			for msn, seg := range rec.segs {
				if !near(seg.Duration, tc.seg, 2*time.Millisecond) {
					t.Errorf("segment %d lasts %v, want %v", msn, seg.Duration, tc.seg)
				}
				if r := int(math.Round(seg.Duration.Seconds())); r > rec.td {
					t.Errorf("segment %d: EXTINF %v rounds to %d > %d", msn, seg.Duration, r, rec.td)
				}
				body := mustFetch(t, m, fileReq(fmt.Sprintf("seg%d.m4s", msn))).Body
				v := decodeFragments(t, body)[0].tracks[1]
				if !isSync(v.samples[0]) {
					t.Errorf("segment %d does not start with a keyframe", msn)
				}
			}
		})
	}
}

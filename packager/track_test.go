package packager

import (
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// TestTimestampJumps checks publishers whose clock jumps (an encoder
// restart, a wrapped or reset clock): no error, no panic, each track's
// timeline stays continuous, segments keep their length, PTS stays exact
// around the jump and composition offsets stay non-negative.
func TestTimestampJumps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		jump    time.Duration
		at      int // frame
		bframes bool
		rounded bool
	}{
		{"forward_3h", 3 * time.Hour, 100, false, true},
		{"backward_3h", -3 * time.Hour, 100, false, true},
		{"forward_5s", 5 * time.Second, 100, false, true},
		{"backward_2s", -2 * time.Second, 100, false, true},
		{"forward_27h_exact", 27 * time.Hour, 100, false, false},
		{"backward_past_zero_bframes", -10 * time.Hour, 100, true, true},
		{"forward_3h_bframes_exact", 3 * time.Hour, 100, true, false},
		{"forward_on_keyframe", 3 * time.Hour, 120, false, true},
		{"backward_on_keyframe_bframes", -time.Hour, 120, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, Config{})
			sy := publish(t, m, func(s *synth) { s.bframes, s.msRounding = tc.bframes, tc.rounded })
			rec := newRecorder(t, m)
			rec.write(sy, tc.at)
			sy.jump = tc.jump
			rec.write(sy, 300-tc.at)

			video := rec.samples(1, false) // tfdt continuity, strictly
			rec.samples(2, false)
			// Before the jump, PTS are the ones sent.
			checkVideo(t, sy.sent[:tc.at], video[:tc.at], 0)
			// After it, they are the ones sent, moved as a whole.
			after := sy.sent[tc.at:]
			got := video[tc.at:]
			// The first frame after the jump is where the moved timeline
			// starts.
			origin := video[tc.at].dts
			for i, g := range got {
				if g.cto < 0 {
					t.Fatalf("frame %d after the jump: negative composition offset", i)
				}
				if want := int64(origin) + ticks90k(after[i].pts-after[0].dts); g.pts() != want {
					t.Fatalf("frame %d after the jump: PTS %d, want %d", i, g.pts(), want)
				}
			}
			// The timeline did not move: frame 299 is where 299 frames of
			// 1/30 s put it, give or take the millisecond rounding of the
			// timestamps and of the frame interval guessed at the jump.
			last := video[len(video)-1]
			if d := int64(last.dts) - ticks90k(time.Duration(len(video)-1)*time.Second/30); d > 270 || d < -270 {
				t.Errorf("last frame at %d ticks, %d from where it belongs", last.dts, d)
			}
			for msn, seg := range rec.segs {
				if !near(seg.Duration, 2*time.Second, 2*time.Millisecond) {
					t.Errorf("segment %d lasts %v", msn, seg.Duration)
				}
			}
			if len(rec.segs) < 4 {
				t.Errorf("%d segments", len(rec.segs))
			}
		})
	}
}

// TestBadUnits checks that units a publisher should not send are refused
// or dropped without a panic, and the stream goes on.
func TestBadUnits(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	rec := newRecorder(t, m)
	rec.write(sy, 50)
	stranger := &ingest.Track{ID: 9, Codec: sy.video.Codec}
	for _, u := range []*ingest.Unit{
		{Track: nil, AU: [][]byte{{0x41}}},
		{Track: stranger, AU: [][]byte{{0x41}}},
		{Track: sy.video, DTS: sy.frameTime(50), PTS: sy.frameTime(50)},                                // no NAL unit
		{Track: sy.video, DTS: sy.frameTime(50), PTS: sy.frameTime(50), AU: [][]byte{{}}},              // empty NAL unit
		{Track: sy.video, DTS: sy.frameTime(50), PTS: sy.frameTime(49), AU: [][]byte{{0x41, 0x9a, 0}}}, // PTS < DTS
		{Track: sy.audio, DTS: sy.frameTime(50), PTS: sy.frameTime(50)},                                // empty audio frame
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("unit %+v: panic %v", u, r)
				}
			}()
			_ = sy.pub.WriteUnit(u)
		}()
	}
	sy.frame++
	rec.write(sy, 150)
	video := rec.samples(1, false)
	for i, v := range video {
		if v.cto < 0 {
			t.Fatalf("frame %d: negative composition offset", i)
		}
	}
	if len(rec.segs) < 3 {
		t.Errorf("%d segments after bad units", len(rec.segs))
	}
}

package ingest

import (
	"testing"
	"time"
)

// TestWallClock: units are dated by the earliest arrival relative to their
// time, so a backlog sent at once is dated by the units that came after it in
// real time, no unit is dated after it had arrived, and an anchor moves
// forward only once an early arrival is a window old.
func TestWallClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const frame = time.Second / 30
	type arrival struct {
		pts time.Duration
		at  time.Duration // after t0
	}
	cases := []struct {
		name     string
		arrivals []arrival
		wantPTS0 time.Duration // the wall time of PTS 0 at the end, after t0
	}{
		// 2 s of media at once at t0+2s, then real time: the frame at PTS
		// 2 s arrived (complete) at t0+2s+frame.
		{"backlog then real time", func() []arrival {
			var a []arrival
			for i := range 60 {
				a = append(a, arrival{time.Duration(i) * frame, 2 * time.Second})
			}
			for i := 60; i < 90; i++ {
				a = append(a, arrival{time.Duration(i) * frame, 2*time.Second + time.Duration(i-59)*frame})
			}
			return a
		}(), 0},
		// Real time with one late frame: the late one does not move it.
		{"late frame", []arrival{{0, frame}, {frame, 2 * frame}, {2 * frame, 3*frame + 200*time.Millisecond}, {3 * frame, 4 * frame}}, 0},
		// A clock that runs 1% slow: the anchor follows it, a window late.
		{"slow clock", func() []arrival {
			var a []arrival
			for i := range 30 * 40 {
				pts := time.Duration(i) * frame
				a = append(a, arrival{pts, pts*101/100 + frame})
			}
			return a
		}(), 300 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c wallClock
			for i, a := range tc.arrivals {
				arrived := t0.Add(a.at)
				wall := c.date(a.pts, a.pts, arrived)
				if i > 0 && wall.Add(frame).After(arrived) {
					t.Fatalf("unit %d at %v dated %v, after it had arrived at %v", i, a.pts, wall, arrived)
				}
			}
			got := c.at(0).Sub(t0)
			if got < tc.wantPTS0-50*time.Millisecond || got > tc.wantPTS0+50*time.Millisecond {
				t.Errorf("PTS 0 at t0%+v, want t0%+v", got, tc.wantPTS0)
			}
		})
	}
}

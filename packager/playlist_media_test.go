package packager

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// TestMediaPlaylist checks the tags of the media playlist as gohlslib reads
// them, the window size, and that part bytes stay servable for three target
// durations after their tags left the playlist.
func TestMediaPlaylist(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     Config
		window  int // segments listed
		td      int
		partTgt time.Duration
	}{
		{"defaults", Config{}, 10, 2, 333 * time.Millisecond},
		{"window_below_6", Config{WindowSegments: 3}, 6, 2, 333 * time.Millisecond},
		{"window_7_part_500ms", Config{WindowSegments: 7, PartTarget: 500 * time.Millisecond}, 7, 2, 500 * time.Millisecond},
		{"td_4s", Config{TargetDuration: 4 * time.Second, PartTarget: time.Second, WindowSegments: 6}, 6, 4, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, tc.cfg)
			cfg := m.Config()
			if cfg.WindowSegments != tc.window || cfg.PartTarget != tc.partTgt {
				t.Fatalf("config in effect: %+v", cfg)
			}
			sy := publish(t, m)
			rec := newRecorder(t, m)
			td := time.Duration(tc.td) * time.Second
			// Parts whose tags left the playlist, by the frame count then.
			left := map[int64]int{}
			listed := map[int64]bool{}
			// Long enough to fill the window and to see parts leave the
			// playlist and then the server.
			total := int((time.Duration(tc.window)*td + 4*td) / time.Second * 30)
			for range total {
				lists := rec.lists
				rec.write(sy, 1)
				if rec.last == nil || rec.lists == lists {
					continue
				}
				mp := rec.media
				now := map[int64]bool{}
				for _, seg := range mp.Segments {
					for _, p := range seg.Parts {
						now[partNumber(t, p.URI)] = true
					}
				}
				for _, p := range mp.Parts {
					now[partNumber(t, p.URI)] = true
				}
				for n := range listed {
					if !now[n] {
						left[n] = sy.frame
					}
				}
				listed = now
				// RFC 8216bis 6.2.2: parts removed from the playlist stay
				// available for a while; three target durations here.
				for n, at := range left {
					age := time.Duration(sy.frame-at) * time.Second / 30
					_, err := fetchNow(m, fileReq(fmt.Sprintf("part%d.m4s", n)))
					if age < 3*td && err != nil {
						t.Fatalf("part %d, whose tag left %v ago: %v", n, age, err)
					}
					if age > 3*td+2*td && err == nil {
						t.Errorf("part %d still served %v after its tag left", n, age)
					}
					if err != nil {
						delete(left, n)
					}
				}
			}
			mp := parseMedia(t, rec.last, cfg)
			if mp.TargetDuration != tc.td {
				t.Errorf("EXT-X-TARGETDURATION %d, want %d", mp.TargetDuration, tc.td)
			}
			if len(mp.Segments) != tc.window {
				t.Errorf("%d segments listed, want %d", len(mp.Segments), tc.window)
			}
			if mp.PartInf.PartTarget != tc.partTgt {
				t.Errorf("PART-TARGET %v", mp.PartInf.PartTarget)
			}
			if *mp.ServerControl.CanSkipUntil != 6*td || *mp.ServerControl.PartHoldBack != 3*tc.partTgt {
				t.Errorf("server control %+v", mp.ServerControl)
			}
			if mp.Map.URI != "init0.mp4" || mp.PreloadHint == nil {
				t.Errorf("map %+v, preload hint %+v", mp.Map, mp.PreloadHint)
			}
			// Segments older than the window stay servable a while.
			oldest := int64(mp.MediaSequence)
			for msn := oldest - int64(cfg.RetainSegments); msn < oldest; msn++ {
				if _, err := fetchNow(m, fileReq(fmt.Sprintf("seg%d.m4s", msn))); err != nil {
					t.Errorf("segment %d, %d before the window: %v", msn, oldest-msn, err)
				}
			}
			if _, err := fetchNow(m, fileReq(fmt.Sprintf("seg%d.m4s", oldest-int64(cfg.RetainSegments)-1))); err == nil {
				t.Errorf("segment %d still served", oldest-int64(cfg.RetainSegments)-1)
			}
			// Every segment has its PROGRAM-DATE-TIME, one EXTINF after the
			// previous one.
			for i := 1; i < len(mp.Segments); i++ {
				prev, seg := mp.Segments[i-1], mp.Segments[i]
				if d := seg.DateTime.Sub(*prev.DateTime); !near(d, prev.Duration, 2*time.Millisecond) {
					t.Errorf("%s: PROGRAM-DATE-TIME %v after the previous one, which lasts %v", seg.URI, d, prev.Duration)
				}
			}
		})
	}
}

// TestDeltaUpdate checks _HLS_skip (RFC 8216bis 6.2.5.1): only segments that
// end more than CAN-SKIP-UNTIL before the end are skipped, as many as may be,
// and the delta update applied to the previous full playlist gives the full
// playlist.
func TestDeltaUpdate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		skip      Skip
		frames    int
		reconnect int // the publisher reconnects after this many frames
		skipped   int // segments skipped; 0: no EXT-X-SKIP
	}{
		// One-second segments at 30 fps, CAN-SKIP-UNTIL=6. At 15 s,
		// segments 4-13 are listed and 14 has its parts but the last, 3
		// frames short, which waits for keyframe 450 to close the segment
		// with it: the playlist ends at 14.9 s, and 4-7 end 6 s or more
		// before.
		{"yes", SkipYes, 30 * 15, 0, 4},
		{"v2", SkipV2, 30 * 15, 0, 4},
		// 15.6 s: segments 5-14 listed; 5-8 skipped.
		{"mid_segment", SkipYes, 30*15 + 22, 0, 4},
		{"long_stream", SkipYes, 30 * 20, 0, 4},
		// Keyframe 450 arrived: segment 14 is complete and 15 has no part
		// yet; segments 5-14 are listed, 5-8 skipped.
		{"segment_just_closed", SkipYes, 30*15 + 1, 0, 4},
		// The publisher reconnects at 10 s: the discontinuity is recent
		// and must stay in the delta update.
		{"discontinuity", SkipYes, 30 * 15, 30 * 10, 3},
		// Reconnected at 5 s: the discontinuity is among the skipped
		// segments.
		{"discontinuity_skipped", SkipYes, 30*15 + 15, 30 * 5, 4},
		{"too_short", SkipYes, 30 * 6, 0, 0},
		{"just_too_short", SkipYes, 30*7 - 1, 0, 0},
		{"just_long_enough", SkipYes, 30*7 + 9, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, Config{GracePeriod: time.Minute, TargetDuration: time.Second})
			cfg := m.Config()
			sy := publish(t, m, func(s *synth) { s.gop = 30 })
			first := min(tc.frames, max(tc.reconnect, 1)) - 1
			sy.frames(first)
			if tc.reconnect > 0 {
				sy.pub.Close()
				sy = publish(t, m, func(s *synth) { s.gop = 30 })
			}
			// The client's previous full playlist is 40 frames old.
			sy.frames(tc.frames - first - 40)
			prev := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, cfg)
			sy.frames(40)
			full := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, cfg)
			resp := mustFetch(t, m, mediaReq(-1, -1, tc.skip))
			delta := parseMedia(t, resp.Body, cfg)

			if tc.skipped == 0 {
				if delta.Skip != nil || string(resp.Body) != string(mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body) {
					t.Fatalf("playlist too short to skip, got:\n%s", resp.Body)
				}
				return
			}
			if delta.Skip == nil {
				t.Fatalf("no EXT-X-SKIP:\n%s", resp.Body)
			}
			if delta.Skip.SkippedSegments != tc.skipped {
				t.Errorf("SKIPPED-SEGMENTS=%d, want %d", delta.Skip.SkippedSegments, tc.skipped)
			}
			if delta.MediaSequence != full.MediaSequence {
				t.Errorf("EXT-X-MEDIA-SEQUENCE %d, full playlist %d", delta.MediaSequence, full.MediaSequence)
			}
			// Only segments ending CAN-SKIP-UNTIL or more before the end are
			// skipped, and all of them are.
			end := time.Duration(0)
			for _, seg := range full.Segments {
				end += seg.Duration
			}
			for _, p := range full.Parts {
				end += p.Duration
			}
			at := time.Duration(0)
			for i, seg := range full.Segments {
				at += seg.Duration
				if skipped := i < delta.Skip.SkippedSegments; skipped != (end-at >= *full.ServerControl.CanSkipUntil) {
					t.Errorf("%s ends %v before the end: skipped %v", seg.URI, end-at, skipped)
				}
			}
			// Reconstruct, as a client does, from the previous playlist.
			got := mergeDelta(t, prev, delta)
			if len(got) != len(full.Segments) {
				t.Fatalf("merged %d segments, full playlist has %d", len(got), len(full.Segments))
			}
			// Discontinuity sequence numbers (RFC 8216bis 4.4.3.3): the
			// skipped segments keep those of the previous playlist.
			gotDSN := append(discSeqs(prev)[delta.MediaSequence-prev.MediaSequence:][:tc.skipped], discSeqs(delta)...)
			fullDSN := discSeqs(full)
			for i, seg := range full.Segments {
				g := got[i]
				if g.URI != seg.URI || g.Duration != seg.Duration || !g.DateTime.Equal(*seg.DateTime) ||
					gotDSN[i] != fullDSN[i] || len(g.Parts) != len(seg.Parts) && i >= tc.skipped {
					t.Errorf("segment %d: merged %+v (discontinuity sequence %d), full %+v (%d)\n%s", i, *g, gotDSN[i], *seg, fullDSN[i], resp.Body)
				}
			}
			if len(delta.Parts) != len(full.Parts) || delta.PreloadHint.URI != full.PreloadHint.URI {
				t.Error("delta update differs from the full playlist at the live edge")
			}
			if tc.name == "discontinuity" && !strings.Contains(string(resp.Body), "#EXT-X-DISCONTINUITY\n") {
				// The discontinuity is within the last 12 s: it must stay.
				t.Errorf("delta update lost the discontinuity:\n%s", resp.Body)
			}
		})
	}
}

// mergeDelta applies a delta update to the previous playlist, as a client
// does (RFC 8216bis 6.2.5.1): the skipped segments come from the previous
// playlist.
func mergeDelta(t testing.TB, prev, delta *playlist.Media) []*playlist.MediaSegment {
	t.Helper()
	var out []*playlist.MediaSegment
	for i := range delta.Skip.SkippedSegments {
		msn := delta.MediaSequence + i
		j := msn - prev.MediaSequence
		if j < 0 || j >= len(prev.Segments) {
			t.Fatalf("skipped segment %d is not in the previous playlist (%d-%d)", msn, prev.MediaSequence, prev.MediaSequence+len(prev.Segments)-1)
		}
		out = append(out, prev.Segments[j])
	}
	return append(out, delta.Segments...)
}

// discSeqs returns the discontinuity sequence number of each listed segment.
func discSeqs(mp *playlist.Media) []int {
	n := 0
	if mp.DiscontinuitySequence != nil {
		n = *mp.DiscontinuitySequence
	}
	out := make([]int, len(mp.Segments))
	for i, seg := range mp.Segments {
		if seg.Discontinuity {
			n++
		}
		out[i] = n
	}
	return out
}

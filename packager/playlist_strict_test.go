package packager

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// TestStrictPartRules reads every version of the media playlist, full and
// both delta forms, as a strict validator (hls-parser in strict mode, Apple's
// authoring spec) would, through gohlslib's parser:
//
//   - part tags only for the last three segments, the open one included,
//     and only where they start within three target durations of the end
//     (RFC 8216bis 4.4.4.9: they may go once further than that; Apple's
//     spec says to remove them);
//   - every part but the last of its segment at least 85% of PART-TARGET,
//     so no version lists a segment's short last part before the EXTINF
//     that closes the segment: until then no client can tell it is the
//     last;
//
// and checks that a part whose tag left the playlist is still served, and a
// blocking request for it still answered at once, as before (RFC 8216bis
// 6.2.2: removed parts stay available for a while; 6.2.5.2: a request for a
// part the playlist has gone past returns).
func TestStrictPartRules(t *testing.T) {
	t.Parallel()
	type tcase struct {
		name    string
		cfg     Config
		fps     int
		gop     int
		rounded bool
		// reconnect: the publisher leaves after this many frames and a new
		// one comes back (a short segment, then a discontinuity).
		reconnect int
	}
	var cases []tcase
	for _, fr := range frameRates {
		cases = append(cases, tcase{name: rateName(fr.fps, fr.rounded), fps: fr.fps, gop: 2 * fr.fps, rounded: fr.rounded})
	}
	cases = append(cases,
		// OBS with a 1 s keyframe interval: 2 s segments, keyframes inside.
		tcase{name: "30fps_ms_1s_gop", fps: 30, gop: 30, rounded: true},
		// 2.5 s segments: EXT-X-TARGETDURATION 3.
		tcase{name: "30fps_ms_2.5s_gop", fps: 30, gop: 75, rounded: true},
		// One-second segments: the last three segments span less than
		// three target durations.
		tcase{name: "td_1s", cfg: Config{TargetDuration: time.Second}, fps: 30, gop: 30, rounded: true},
		tcase{name: "part_500ms", cfg: Config{PartTarget: 500 * time.Millisecond}, fps: 30, gop: 60, rounded: true},
		// A segment cut short by the publisher leaving mid-GOP.
		tcase{name: "reconnect_mid_segment", cfg: Config{GracePeriod: time.Minute}, fps: 30, gop: 60, rounded: true, reconnect: 30*9 + 20},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, tc.cfg)
			cfg := m.Config()
			opt := func(s *synth) { s.fps, s.gop, s.msRounding = tc.fps, tc.gop, tc.rounded }
			sy := publish(t, m, opt)
			var last [3][]byte
			// Where each part was listed, and whether it still is.
			where := map[string]partAt{}
			listedNow := map[string]partAt{}
			unlisted, shortLast := 0, 0
			total := 16 * tc.gop * max(1, 2*tc.fps/tc.gop)
			for f := range total {
				if tc.reconnect > 0 && f == tc.reconnect {
					sy.pub.Close()
					sy = publish(t, m, opt)
				}
				sy.next()
				for skip := SkipNone; skip <= SkipV2; skip++ {
					r, err := fetchNow(m, mediaReq(-1, -1, skip))
					if err != nil {
						continue // no segment yet
					}
					if bytes.Equal(r.Body, last[skip]) {
						continue
					}
					last[skip] = r.Body
					mp := parseMedia(t, r.Body, cfg)
					shortLast += checkStrictParts(t, mp, r.Body, cfg)
					if skip != SkipNone {
						continue
					}
					now := listedParts(mp)
					for uri, at := range now {
						where[uri] = at
					}
					for uri := range listedNow {
						if _, ok := now[uri]; ok {
							continue
						}
						// The tag left the playlist just now: the part and a
						// blocking request for it work as they did.
						unlisted++
						at := where[uri]
						if _, err := fetchNow(m, fileReq(uri)); err != nil {
							t.Fatalf("%s (part %d.%d), whose tag just left the playlist: %v", uri, at.msn, at.idx, err)
						}
						br, err := fetchNow(m, mediaReq(at.msn, at.idx, SkipNone))
						if err != nil {
							t.Fatalf("_HLS_msn=%d&_HLS_part=%d, a part whose tag just left the playlist: %v", at.msn, at.idx, err)
						}
						if br.Kind != KindBlockingPlaylist {
							t.Errorf("_HLS_msn=%d&_HLS_part=%d answered as %v", at.msn, at.idx, br.Kind)
						}
					}
					listedNow = now
				}
			}
			if unlisted == 0 {
				t.Error("no part tag left the playlist: the window was never checked")
			}
			if shortLast == 0 {
				t.Error("no segment ended on a short part: the 85% rule was never checked")
			}
		})
	}
}

type partAt struct {
	msn int64
	idx int64
}

// listedParts returns the parts a media playlist lists, by URI.
func listedParts(mp *playlist.Media) map[string]partAt {
	out := map[string]partAt{}
	first := int64(mp.MediaSequence)
	if mp.Skip != nil {
		first += int64(mp.Skip.SkippedSegments)
	}
	for i, seg := range mp.Segments {
		for j, p := range seg.Parts {
			out[p.URI] = partAt{first + int64(i), int64(j)}
		}
	}
	for j, p := range mp.Parts {
		out[p.URI] = partAt{first + int64(len(mp.Segments)), int64(j)}
	}
	return out
}

// checkStrictParts fails the test where a strict validator would refuse
// the playlist's part tags, and returns how many complete segments it
// lists that end on a part under 85% of PART-TARGET.
func checkStrictParts(t *testing.T, mp *playlist.Media, body []byte, cfg Config) (shortLast int) {
	t.Helper()
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf(format+"\n%s", append(a, body)...)
	}
	// The segments as hls-parser counts them: the open one (parts after
	// the last EXTINF, then the preload hint) is one, even when it holds
	// only the hint (hls-parser takes the hint for one of its parts).
	type entry struct {
		parts    []*playlist.MediaPart
		dur      time.Duration
		complete bool
		name     string
	}
	var entries []entry
	for _, seg := range mp.Segments {
		entries = append(entries, entry{seg.Parts, seg.Duration, true, seg.URI})
	}
	if len(mp.Parts) > 0 || mp.PreloadHint != nil {
		var d time.Duration
		for _, p := range mp.Parts {
			d += p.Duration
		}
		entries = append(entries, entry{mp.Parts, d, false, "the open segment"})
	}
	var end time.Duration
	for _, e := range entries {
		end += e.dur
	}
	td := time.Duration(mp.TargetDuration) * time.Second
	minPart := time.Duration(float64(mp.PartInf.PartTarget) * 0.85)
	var at time.Duration
	for i, e := range entries {
		start := at
		at += e.dur
		if len(e.parts) == 0 {
			continue
		}
		if i < len(entries)-3 {
			fail("%s, %d segments from the end, lists parts", e.name, len(entries)-i)
		}
		// The playlist's durations are rounded to 10 µs.
		if end-start > 3*td+time.Millisecond {
			fail("%s lists parts from %v before the end, more than three target durations", e.name, end-start)
		}
		for j, p := range e.parts {
			lastOfSegment := e.complete && j == len(e.parts)-1
			if p.Duration < minPart && !lastOfSegment {
				what := "not the last of its segment"
				if !e.complete {
					what = "listed before the EXTINF that would make it the last"
				}
				fail("part %d of %s lasts %v, under 85%% of PART-TARGET %v, %s", j, e.name, p.Duration, mp.PartInf.PartTarget, what)
			}
			if lastOfSegment && p.Duration < minPart {
				shortLast++
			}
		}
	}
	if mp.PartInf.PartTarget != cfg.PartTarget {
		fail("PART-TARGET %v, configured %v", mp.PartInf.PartTarget, cfg.PartTarget)
	}
	return shortLast
}

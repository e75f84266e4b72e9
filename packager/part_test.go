package packager

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// frameRates are the rates OBS offers, each with RTMP's millisecond
// timestamps and with exact ones (RTSP's 90 kHz clock).
var frameRates = []struct {
	fps     int
	rounded bool
}{
	{24, true}, {24, false}, {25, true}, {25, false}, {30, true}, {30, false},
	{50, true}, {50, false}, {60, true}, {60, false},
}

func rateName(fps int, rounded bool) string {
	if rounded {
		return fmt.Sprintf("%dfps_ms", fps)
	}
	return fmt.Sprintf("%dfps_exact", fps)
}

// TestParts checks the partial segments at every frame rate: each is at most
// PART-TARGET and at least 85% of it unless it starts a segment or ends one,
// INDEPENDENT=YES exactly when it starts with a keyframe, its tag duration
// matches its samples, and a segment is its parts' bytes back to back.
func TestParts(t *testing.T) {
	t.Parallel()
	type tcase struct {
		name     string
		fps, gop int
		rounded  bool
		bframes  bool
	}
	var cases []tcase
	for _, fr := range frameRates {
		cases = append(cases, tcase{rateName(fr.fps, fr.rounded), fr.fps, 2 * fr.fps, fr.rounded, false})
	}
	// Keyframes inside a segment fall inside a part: only the segment's
	// first part is INDEPENDENT.
	cases = append(cases, tcase{"30fps_ms_1s_gop", 30, 30, true, false},
		tcase{"25fps_exact_1.48s_gop_bframes", 25, 37, false, true})
	for _, fr := range cases {
		t.Run(fr.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, Config{})
			cfg := m.Config()
			sy := publish(t, m, func(s *synth) { s.fps, s.gop, s.msRounding, s.bframes = fr.fps, fr.gop, fr.rounded, fr.bframes })
			rec := newRecorder(t, m)
			// Three segments and a half.
			segFrames := (2*fr.fps + fr.gop - 1) / fr.gop * fr.gop
			rec.write(sy, 3*segFrames+segFrames/2)

			if cfg.PartTarget != 333*time.Millisecond || cfg.TargetDuration != 2*time.Second {
				t.Fatalf("defaults: part target %v, target duration %v", cfg.PartTarget, cfg.TargetDuration)
			}
			if len(rec.partSeg) < 20 {
				t.Fatalf("only %d parts seen", len(rec.partSeg))
			}
			videoFrames := 0
			for n := range rec.next {
				pos, ok := rec.partSeg[n]
				if !ok {
					t.Fatalf("part %d was never listed", n)
				}
				frs := decodeFragments(t, rec.parts[n])
				if len(frs) != 1 {
					t.Fatalf("part %d has %d fragments", n, len(frs))
				}
				v := frs[0].tracks[1]
				if len(v.samples) == 0 {
					t.Fatalf("part %d has no video", n)
				}
				videoFrames += len(v.samples)
				dur := time.Duration(v.duration()) * time.Second / 90000
				if !near(dur, pos.tag.Duration, 10*time.Microsecond) {
					t.Errorf("part %d: tag says %v, samples last %v", n, pos.tag.Duration, dur)
				}
				if dur > cfg.PartTarget {
					t.Errorf("part %d lasts %v > PART-TARGET %v", n, dur, cfg.PartTarget)
				}
				if pos.tag.Independent != isSync(v.samples[0]) {
					t.Errorf("part %d: INDEPENDENT=%v, first sample sync=%v", n, pos.tag.Independent, isSync(v.samples[0]))
				}
				for i, s := range v.samples {
					if want := sy.sent[videoFrames-len(v.samples)+i].key; isSync(s) != want {
						t.Errorf("part %d sample %d: sync %v, sent as keyframe %v", n, i, isSync(s), want)
					}
				}
				segParts, complete := rec.segParts[pos.msn]
				lastOfSeg := complete && pos.index == len(segParts)-1 && rec.segs[pos.msn] != nil
				if !pos.tag.Independent && !lastOfSeg && dur < cfg.PartTarget*85/100 {
					t.Errorf("part %d (segment %d index %d) lasts %v < 85%% of PART-TARGET", n, pos.msn, pos.index, dur)
				}
			}
			if videoFrames > len(sy.sent) || videoFrames < len(sy.sent)-fr.fps/2 {
				t.Errorf("%d frames sent, %d in parts", len(sy.sent), videoFrames)
			}

			// A segment and its parts carry the same bytes.
			checked, views := 0, 0
			for msn, parts := range rec.segParts {
				if rec.segs[msn] == nil {
					continue
				}
				var cat []byte
				for _, p := range parts {
					cat = append(cat, rec.parts[partNumber(t, p.URI)]...)
				}
				seg := mustFetch(t, m, fileReq(fmt.Sprintf("seg%d.m4s", msn)))
				if !bytes.Equal(seg.Body, cat) {
					t.Errorf("segment %d differs from its parts", msn)
				}
				// Once the segment is complete, its parts still servable are
				// views of its bytes, not a second copy.
				off := 0
				for _, p := range parts {
					r, err := fetchNow(m, fileReq(p.URI))
					if errors.Is(err, ErrNotFound) {
						off += len(rec.parts[partNumber(t, p.URI)])
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					if len(r.Body) == 0 || off+len(r.Body) > len(seg.Body) || &r.Body[0] != &seg.Body[off] {
						t.Errorf("segment %d: part %s is not a view of the segment's bytes at %d", msn, p.URI, off)
					}
					views++
					off += len(r.Body)
				}
				checked++
			}
			if checked < 3 {
				t.Errorf("only %d segments checked against their parts", checked)
			}
			if views < 3 {
				t.Errorf("only %d parts of complete segments were still servable", views)
			}
		})
	}
}

// TestPartClosesOnLastFrame checks that a part is published by the write of
// its last frame, before the next frame arrives: a viewer blocked on the
// next part gets it, and the part holds every frame written so far. A
// segment's short last part is the exception: it comes out with the
// keyframe that closes its segment.
func TestPartClosesOnLastFrame(t *testing.T) {
	t.Parallel()
	for _, fr := range frameRates {
		t.Run(rateName(fr.fps, fr.rounded), func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, Config{})
			sy := publish(t, m, func(s *synth) { s.fps, s.gop, s.msRounding = fr.fps, 2*fr.fps, fr.rounded })
			// The first GOP shows the keyframe interval; the segment after it
			// ends on a predicted keyframe.
			sy.frames(2*fr.fps + 1)
			rec := newRecorder(t, m)
			rec.poll()
			framesInParts := 0
			for n := range rec.next {
				framesInParts += len(decodeFragments(t, rec.parts[n])[0].tracks[1].samples)
			}
			shortLast := 0
			for range 16 {
				mp := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, m.Config())
				msn := int64(mp.MediaSequence + len(mp.Segments))
				idx := int64(len(mp.Parts))
				waiting := fetchAsync(m, mediaReq(msn, idx, SkipNone))
				waitBlocked(t, m, 1)
				sy.next()
				if rec.poll() == 0 {
					// The part is not complete: the request must still wait.
					if m.Blocked() != 1 {
						t.Fatalf("blocked request for %d.%d returned before its part", msn, idx)
					}
					// Release it with the frames that complete the part.
					for rec.poll() == 0 {
						sy.next()
					}
				}
				r := await(t, waiting, 5*time.Second)
				if r.err != nil {
					t.Fatal(r.err)
				}
				got := parseMedia(t, r.resp.Body, m.Config())
				if !hasPart(got, msn, idx) {
					t.Fatalf("blocking request for %d.%d answered without that part:\n%s", msn, idx, r.resp.Body)
				}
				// The part just published holds every frame written: it
				// closed on its last frame. Except a segment's last part
				// shorter than 85% of PART-TARGET: it waits for the keyframe
				// after it, so that the playlist that lists it also closes
				// its segment (Apple's authoring spec allows only the last
				// part of a segment to be that short), and holds every frame
				// but that keyframe.
				framesInParts += len(decodeFragments(t, rec.parts[rec.next-1])[0].tracks[1].samples)
				waited := 0
				if i := msn - int64(got.MediaSequence); i < int64(len(got.Segments)) {
					seg := got.Segments[i]
					if int64(len(seg.Parts)) != idx+1 || seg.Parts[idx].Duration >= m.Config().PartTarget*minPartPercent/100 {
						t.Fatalf("part %d.%d closed its segment but is not its short last part:\n%s", msn, idx, r.resp.Body)
					}
					waited = 1
					shortLast++
				}
				if framesInParts != len(sy.sent)-waited || waited == 1 && !sy.sent[len(sy.sent)-1].key {
					t.Fatalf("after %d frames written, %d are in published parts: the part closed late", len(sy.sent), framesInParts)
				}
			}
			if shortLast == 0 {
				t.Error("no segment ended on a short part: that case was never checked")
			}
		})
	}
}

// hasPart reports whether the playlist lists part idx of segment msn, or,
// when segment msn ends before part idx, part 0 of the next segment (RFC
// 8216bis 6.2.5.2).
func hasPart(mp *playlist.Media, msn, idx int64) bool {
	first := int64(mp.MediaSequence)
	if mp.Skip != nil {
		first += int64(mp.Skip.SkippedSegments)
	}
	i := msn - first
	switch {
	case i < 0:
		return true
	case i < int64(len(mp.Segments)):
		if idx < int64(len(mp.Segments[i].Parts)) {
			return true
		}
		return hasPart(mp, msn+1, 0)
	case i == int64(len(mp.Segments)):
		return idx < int64(len(mp.Parts))
	}
	return false
}

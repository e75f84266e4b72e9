package packager

import (
	"fmt"
	"testing"
)

// TestInitSegment checks the init segment with mp4ff: one video track at
// 90 kHz and one audio track at the AAC sample rate, both with a trex.
func TestInitSegment(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(70)
	tracks := decodeInit(t, mustFetch(t, m, fileReq("init0.mp4")).Body)
	want := map[uint32]initTrack{1: {"vide", 90000}, 2: {"soun", 48000}}
	if len(tracks) != len(want) {
		t.Fatalf("tracks %v, want %v", tracks, want)
	}
	for id, w := range want {
		if tracks[id] != w {
			t.Errorf("track %d: %+v, want %+v", id, tracks[id], w)
		}
	}
	if _, err := fetchNow(m, fileReq("init1.mp4")); !isErr(err, ErrNotFound) {
		t.Errorf("init1.mp4 before any reconnect: %v, want ErrNotFound", err)
	}
}

// TestFMP4Timeline reads every part and segment with mp4ff and checks the
// decode timeline of each track (each tfdt is the previous one plus the
// trun sample durations), the sample counts and durations, the sync flags,
// and that every video sample keeps the PTS the publisher sent, with no
// negative composition offset.
func TestFMP4Timeline(t *testing.T) {
	t.Parallel()
	for _, bframes := range []bool{false, true} {
		for _, fr := range frameRates {
			name := rateName(fr.fps, fr.rounded)
			if bframes {
				name += "_bframes"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				m := newTestManager(t, Config{})
				sy := publish(t, m, func(s *synth) {
					s.fps, s.gop, s.msRounding, s.bframes = fr.fps, 2*fr.fps, fr.rounded, bframes
				})
				rec := newRecorder(t, m)
				rec.write(sy, 6*fr.fps+fr.fps/2)
				checkVideo(t, sy.sent, rec.samples(1, false), 0)

				audio := rec.samples(2, false)
				if len(audio) < 6*48000/1024 {
					t.Errorf("%d audio samples", len(audio))
				}
				for i, a := range audio {
					if a.dur != 1024 || a.cto != 0 || !a.sync {
						t.Fatalf("audio sample %d: %+v", i, a)
					}
					if i > 0 && a.dts != audio[i-1].dts+1024 {
						t.Fatalf("audio sample %d at %d, previous at %d", i, a.dts, audio[i-1].dts)
					}
				}

				// Segments: the same samples, on the same timelines.
				segs := 0
				var tl tfdtChecker
				for msn := int64(0); ; msn++ {
					r, err := fetchNow(m, fileReq(fmt.Sprintf("seg%d.m4s", msn)))
					if err != nil {
						break
					}
					frs := decodeFragments(t, r.Body)
					tl.add(t, fmt.Sprintf("segment %d", msn), frs)
					if v := frs[0].tracks[1]; len(v.samples) == 0 || !isSync(v.samples[0]) {
						t.Errorf("segment %d does not start with a keyframe", msn)
					}
					segs++
				}
				if segs < 3 {
					t.Errorf("%d segments", segs)
				}
			})
		}
	}
}

// checkVideo compares the video samples read from the parts with the units
// sent: same count (but for the open part), sync flags on keyframes, no
// negative composition offset, and each PTS equal to the PTS sent, counted
// from the first keyframe and shifted by base ticks.
func checkVideo(t testing.TB, sent []sentFrame, got []videoSample, base int64) {
	t.Helper()
	if len(got) > len(sent) || len(got) < len(sent)-30 {
		t.Fatalf("%d frames sent, %d in parts", len(sent), len(got))
	}
	origin := sent[0].dts
	for i, g := range got {
		if g.sync != sent[i].key {
			t.Fatalf("frame %d: sync %v, keyframe %v", i, g.sync, sent[i].key)
		}
		if g.cto < 0 {
			t.Fatalf("frame %d: negative composition offset %d", i, g.cto)
		}
		if want := base + ticks90k(sent[i].pts-origin); g.pts() != want {
			t.Fatalf("frame %d: PTS %d, sent %v (%d ticks) (dts %d cto %d)", i, g.pts(), sent[i].pts-origin, want, g.dts, g.cto)
		}
		if i > 0 && g.dts != got[i-1].dts+uint64(got[i-1].dur) {
			t.Fatalf("frame %d: dts %d, previous ends at %d", i, g.dts, got[i-1].dts+uint64(got[i-1].dur))
		}
		// A decode time estimated for a part's last frame is off by less
		// than a frame.
		if d := int64(g.dts) - base - ticks90k(sent[i].dts-origin); d > 3000 || d < -3000 {
			t.Fatalf("frame %d: dts %d, sent %d", i, g.dts, ticks90k(sent[i].dts-origin))
		}
	}
}

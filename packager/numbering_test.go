package packager

import (
	"bytes"
	"fmt"
	"testing"
)

// TestNumberingAfterRestart plays a crash: a second Manager (the restarted
// process) takes the same stream name. Every number it serves must be past
// the first one's, so that no URL of the old session names other bytes, and
// the discontinuity sequence must grow, staying small for hls.js.
func TestNumberingAfterRestart(t *testing.T) {
	t.Parallel()
	clock := int64(1_000)
	var disc int64 // a stream start's block of discontinuity numbers, as internal/discseq hands out
	cfg := Config{FirstNumbers: func(string) Numbers {
		n := Numbers{Sequence: clock, Name: clock * 1000, Discontinuity: disc}
		disc += 100
		return n
	}}

	type session struct {
		msn   int64
		disc  int64 // EXT-X-DISCONTINUITY-SEQUENCE, 0 when absent
		segs  int64 // listed, the open one included
		init  string
		parts map[string][]byte
	}
	run := func() session {
		m := New(cfg, nil)
		defer m.Close()
		sy := publish(t, m)
		sy.frames(130)
		body := mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body
		mp := parseMedia(t, body, m.Config())
		s := session{msn: int64(mp.MediaSequence), init: mp.Map.URI, segs: int64(len(mp.Segments)), parts: map[string][]byte{}}
		for _, seg := range mp.Segments {
			for _, p := range seg.Parts {
				s.parts[p.URI] = mustFetch(t, m, fileReq(p.URI)).Body
			}
			s.parts[seg.URI] = mustFetch(t, m, fileReq(seg.URI)).Body
		}
		if mp.DiscontinuitySequence != nil {
			s.disc = int64(*mp.DiscontinuitySequence)
		}
		return s
	}

	first := run()
	if first.msn != clock || first.init != fmt.Sprintf("init%d.mp4", clock*1000) {
		t.Fatalf("first session: media sequence %d, map %s; want %d and init%d.mp4", first.msn, first.init, clock, clock*1000)
	}
	// The restart comes as many seconds later as the first session had
	// segments: fewer would be a stream pushed faster than real time.
	clock += first.segs
	second := run()
	// RFC 8216bis 6.2.2: the discontinuity sequence never goes back either.
	if second.msn < first.msn+first.segs || second.init == first.init || second.disc <= first.disc {
		t.Errorf("after restart: media sequence %d, discontinuity sequence %d, map %s; before: %d, %d, %s",
			second.msn, second.disc, second.init, first.msn, first.disc, first.init)
	}
	for name, body := range second.parts {
		if old, ok := first.parts[name]; ok && !bytes.Equal(old, body) {
			t.Errorf("%s names different bytes after the restart", name)
		}
	}
}

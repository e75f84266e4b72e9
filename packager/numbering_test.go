package packager

import (
	"bytes"
	"fmt"
	"testing"
)

// TestNumberingAfterRestart plays a crash: a second Manager (the restarted
// process) takes the same stream name. Every number it serves must be past
// the first one's, so that no URL of the old session names other bytes, and
// the playlist must stay one that hls.js can follow.
func TestNumberingAfterRestart(t *testing.T) {
	t.Parallel()
	clock := int64(1_000)
	cfg := Config{FirstNumbers: func() Numbers { return Numbers{Sequence: clock, Name: clock * 1000} }}

	type session struct {
		msn   int64
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
		if bytes.Contains(body, []byte("#EXT-X-DISCONTINUITY-SEQUENCE:")) {
			t.Errorf("a fresh stream has a discontinuity sequence (hls.js walks an array up to it on every reload):\n%s", body)
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
	if second.msn < first.msn+first.segs || second.init == first.init {
		t.Errorf("after restart: media sequence %d, map %s; before: %d, %s", second.msn, second.init, first.msn, first.init)
	}
	for name, body := range second.parts {
		if old, ok := first.parts[name]; ok && !bytes.Equal(old, body) {
			t.Errorf("%s names different bytes after the restart", name)
		}
	}
}

package packager

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// TestReconnect checks a publisher that drops and comes back within the
// grace period: the stream goes on with EXT-X-DISCONTINUITY and a new
// EXT-X-MAP before the first new segment, media sequence numbers never go
// back and neither does any track's media time. After the grace period the
// playlist gets EXT-X-ENDLIST, and after EndedLinger the stream is gone.
func TestReconnect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		replace bool // the new publisher arrives before the old one left
		opts    func(*synth)
		// reopts applies to the second publisher only.
		reopts func(*synth)
	}{
		{"drop", false, func(*synth) {}, nil},
		{"drop_60fps_audio_ahead", false, func(s *synth) {
			s.fps, s.gop, s.audioLead = 60, 120, 150*time.Millisecond
		}, nil},
		{"drop_bframes_exact", false, func(s *synth) { s.bframes, s.msRounding = true, false }, nil},
		// The first publisher sent its audio ahead of the video, the second
		// does not: the new audio must still start after the old audio.
		{"drop_audio_ahead_then_not", false, func(s *synth) { s.audioLead = 300 * time.Millisecond },
			func(s *synth) { s.audioLead = 0 }},
		{"replaced", true, func(*synth) {}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const grace, linger = 200 * time.Millisecond, 200 * time.Millisecond
			m := newTestManager(t, Config{GracePeriod: grace, EndedLinger: linger})
			cfg := m.Config()
			rec := newRecorder(t, m)
			first := publish(t, m, tc.opts)
			rec.write(first, 4*first.fps+first.fps/3)
			if !tc.replace {
				first.pub.Close()
				rec.poll()
				// During the grace period there is nothing to hint at.
				mp := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, cfg)
				if mp.PreloadHint != nil || mp.Endlist {
					t.Errorf("publisher gone: preload hint %v, endlist %v", mp.PreloadHint, mp.Endlist)
				}
			}
			oldSegs := int64(len(rec.segs))
			// The new publisher's clock starts again near zero.
			second := publish(t, m, tc.opts, func(s *synth) { s.start = 21 * time.Millisecond })
			if tc.reopts != nil {
				tc.reopts(second)
			}
			if tc.replace {
				if err := first.tryNext(); !errors.Is(err, ErrSuperseded) {
					t.Fatalf("old publication after replacement: %v, want ErrSuperseded", err)
				}
				first.pub.WriteData(&ingest.Data{Name: "onCuePoint"})
				first.pub.Close()
			}
			rec.write(second, 4*second.fps)

			// The playlist lists both publications, the new one after a
			// discontinuity with its own init segment.
			body := string(rec.last)
			i := strings.Index(body, "#EXT-X-DISCONTINUITY\n")
			if i < 0 {
				t.Fatalf("no discontinuity:\n%s", body)
			}
			after := body[i:]
			mapAt := strings.Index(after, "#EXT-X-MAP:URI=\"init1.mp4\"\n")
			firstSeg := strings.Index(after, "#EXTINF:")
			if mapAt < 0 || mapAt > firstSeg || strings.Count(body, "#EXT-X-DISCONTINUITY\n") != 1 {
				t.Fatalf("want one discontinuity followed by EXT-X-MAP init1.mp4 before the segment:\n%s", body)
			}
			if strings.Contains(body[:i], "init1.mp4") {
				t.Fatalf("new init segment before the discontinuity:\n%s", body)
			}
			tracks := decodeInit(t, mustFetch(t, m, fileReq("init1.mp4")).Body)
			if len(tracks) != 2 {
				t.Errorf("init1.mp4 tracks: %v", tracks)
			}
			// Every segment number appears once, in order, the new ones
			// right after the old ones.
			for msn := int64(0); msn < int64(len(rec.segs)); msn++ {
				if rec.segs[msn] == nil {
					t.Fatalf("segment %d never listed (segments %d)", msn, len(rec.segs))
				}
			}
			want := oldSegs // the drop completed the old publisher's last segment
			if tc.replace {
				want++ // the replacement did
			}
			for i, seg := range rec.media.Segments {
				if msn := int64(rec.media.MediaSequence + i); seg.Discontinuity && msn != want {
					t.Errorf("discontinuity before segment %d, want %d", msn, want)
				}
			}
			// Media time never goes back on any track, across the
			// reconnection.
			rec.samples(1, true)
			rec.samples(2, true)
			video := rec.samples(1, true)
			for i := 1; i < len(video); i++ {
				if video[i].pts() < 0 || video[i].dts < video[i-1].dts {
					t.Fatalf("video sample %d goes back", i)
				}
			}

			// The publisher leaves for good: EXT-X-ENDLIST after the grace
			// period. A request blocked on the next segment is answered by it.
			l, _, _ := liveEdge(t, m)
			ch := fetchAsync(m, mediaReq(l+1, -1, SkipNone))
			waitBlocked(t, m, 1)
			start := time.Now()
			second.pub.Close()
			r := await(t, ch, 5*time.Second)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if el := time.Since(start); el < grace-10*time.Millisecond {
				t.Errorf("ended %v after the publisher left, grace period %v", el, grace)
			}
			mp := parseMedia(t, r.resp.Body, cfg)
			if !mp.Endlist || !r.resp.Ended {
				t.Fatalf("no EXT-X-ENDLIST:\n%s", r.resp.Body)
			}
			rec.poll()
			if _, err := fetchNow(m, fileReq(mp.Segments[len(mp.Segments)-1].URI)); err != nil {
				t.Errorf("last segment of the ended stream: %v", err)
			}
			// After EndedLinger every URL of the stream is gone.
			eventually(t, 5*time.Second, "the ended stream to go", func() bool {
				_, err := fetchNow(m, mediaReq(-1, -1, SkipNone))
				return errors.Is(err, ErrNotFound)
			})
			if el := time.Since(start); el < grace+linger-10*time.Millisecond {
				t.Errorf("stream removed %v after the publisher left", el)
			}
			for _, f := range []string{"index.m3u8", "init1.mp4", mp.Segments[0].URI, "part0.m4s"} {
				if _, err := fetchNow(m, fileReq(f)); !errors.Is(err, ErrNotFound) {
					t.Errorf("%s after the stream ended: %v", f, err)
				}
			}
			if len(m.StreamNames()) != 0 {
				t.Errorf("streams left: %v", m.StreamNames())
			}
		})
	}
}

// TestPublishAfterEnd checks a publisher that comes back once the stream
// ended but before it was removed: a new stream starts under the same name,
// numbered after the old one so that no URL is reused.
func TestPublishAfterEnd(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{GracePeriod: 50 * time.Millisecond, EndedLinger: time.Minute})
	first := publish(t, m)
	first.frames(130)
	old := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, m.Config())
	l, _, _ := liveEdge(t, m)
	ch := fetchAsync(m, mediaReq(l+1, -1, SkipNone))
	first.pub.Close()
	if r := await(t, ch, 5*time.Second); r.err != nil || !r.resp.Ended {
		t.Fatalf("stream did not end: %v", r.err)
	}
	second := publish(t, m)
	second.frames(130)
	mp := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, m.Config())
	if mp.Endlist || mp.MediaSequence <= old.MediaSequence+len(old.Segments) {
		t.Fatalf("new stream after end: endlist %v, media sequence %d (old ended at %d)\n", mp.Endlist, mp.MediaSequence, old.MediaSequence+len(old.Segments))
	}
	if mp.Map.URI == "init0.mp4" {
		t.Errorf("new stream reuses init0.mp4")
	}
	if p := partNumber(t, mp.Segments[0].Parts[0].URI); p <= 14 {
		t.Errorf("new stream's first part is part%d.m4s", p)
	}
}

// TestPublishErrors checks what Publish refuses.
func TestPublishErrors(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{MaxStreams: 1})
	publish(t, m)
	_, info := newSynth(t)
	info.Name = "other"
	if _, err := m.Publish(info); !errors.Is(err, ErrTooManyStreams) {
		t.Errorf("second stream over MaxStreams=1: %v", err)
	}
	m2 := newTestManager(t, Config{})
	if _, err := m2.Publish(ingest.PublishInfo{Name: "x"}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("no tracks: %v", err)
	}
	if _, err := m2.Publish(ingest.PublishInfo{Name: "x", Tracks: []*ingest.Track{{ID: 1}}}); err == nil {
		t.Error("track without codec accepted")
	}
	// A refused publisher leaves no stream behind.
	if _, ok := m2.Stream("x"); ok {
		t.Error("refused publication left a stream")
	}
	m2.Close()
	if _, err := m2.Publish(info); err == nil {
		t.Error("publish after Close accepted")
	}
	for _, f := range []string{"seg-1.m4s", "partx.m4s", "seg.m4s", "foo.ts", "init9.mp4", "stream.m3u8"} {
		if _, err := fetchNow(m, Request{Stream: "test", File: f, MSN: -1, Part: -1}); !errors.Is(err, ErrNotFound) && f != "stream.m3u8" {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := fetchNow(m, Request{Stream: "nope", File: "stream.m3u8", MSN: -1, Part: -1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown stream: %v", err)
	}
}

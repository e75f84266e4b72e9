package packager

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/hlsname"
)

// liveEdge returns the media sequence number of the segment receiving
// parts and the index of its last part, from the playlist.
func liveEdge(t testing.TB, m *Manager) (msn, idx int64, mp *playlist.Media) {
	t.Helper()
	mp = parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, m.Config())
	return int64(mp.MediaSequence + len(mp.Segments)), int64(len(mp.Parts)) - 1, mp
}

// TestBlockingReload checks _HLS_msn and _HLS_part (RFC 8216bis 6.2.5.2).
// The stream is 30 fps with a keyframe every 2 s: 7 parts per segment, the
// last one 6 frames long. Each case starts on a frame count, asks relative to
// the live edge (L: segment with parts, k: its last part) and writes frames
// until the request must have returned.
func TestBlockingReload(t *testing.T) {
	t.Parallel()
	const (
		now   = iota // returns without waiting
		waits        // blocks until the frames are written, then returns
		fails        // returns err at once
	)
	for _, tc := range []struct {
		name   string
		frames int // written before the request
		msn    func(l, k int64) (int64, int64)
		expect int
		err    error
		// then: frames that publish the awaited part; the request must still
		// be blocked after then-1 of them.
		then int
		// want is the segment and part index the answer must list.
		want func(l, k int64) (int64, int64)
	}{
		{name: "existing_part", frames: 130, expect: now,
			msn:  func(l, k int64) (int64, int64) { return l, k },
			want: func(l, k int64) (int64, int64) { return l, k }},
		{name: "existing_segment", frames: 130, expect: now,
			msn:  func(l, k int64) (int64, int64) { return l - 1, -1 },
			want: func(l, k int64) (int64, int64) { return l - 1, 6 }},
		{name: "segment_left_the_window", frames: 30 * 26, expect: now,
			msn:  func(l, k int64) (int64, int64) { return 0, 3 },
			want: func(l, k int64) (int64, int64) { return l, k }},
		// Frame 130 is the second of part 15 (segment 2 part 1, frames 129-137).
		{name: "next_part", frames: 130, expect: waits, then: 8,
			msn:  func(l, k int64) (int64, int64) { return l, k + 1 },
			want: func(l, k int64) (int64, int64) { return l, k + 1 }},
		// Segment 2 completes when keyframe 180 arrives: 50 frames on.
		{name: "next_segment", frames: 130, expect: waits, then: 51,
			msn:  func(l, k int64) (int64, int64) { return l, -1 },
			want: func(l, k int64) (int64, int64) { return l, 6 }},
		// RFC 8216bis 6.2.5.2: a part index past the last part of a complete
		// segment means part 0 of the next one. After keyframe 120 segment
		// 1 is complete and segment 2 has no part until frame 128.
		{name: "part_past_end_of_segment", frames: 121, expect: waits, then: 8,
			msn:  func(l, k int64) (int64, int64) { return l - 1, 7 },
			want: func(l, k int64) (int64, int64) { return l, 0 }},
		{name: "part_past_end_of_complete_segment_exists", frames: 130, expect: now,
			msn:  func(l, k int64) (int64, int64) { return l - 1, 9 },
			want: func(l, k int64) (int64, int64) { return l, 0 }},
		// Segment 2 has 7 parts, 5 of them written: part 7 is part 0 of
		// segment 3 (frames 180-188), two parts ahead.
		{name: "part_past_end_of_open_segment", frames: 174, expect: waits, then: 15,
			msn:  func(l, k int64) (int64, int64) { return l, 7 },
			want: func(l, k int64) (int64, int64) { return l + 1, 0 }},
		// Segment 3 completes when keyframe 240 arrives.
		{name: "msn_two_ahead", frames: 130, expect: waits, then: 111,
			msn:  func(l, k int64) (int64, int64) { return l + 1, -1 },
			want: func(l, k int64) (int64, int64) { return l + 1, 6 }},
		{name: "msn_three_ahead", frames: 130, expect: fails, err: ErrBadRequest,
			msn: func(l, k int64) (int64, int64) { return l + 2, -1 }},
		{name: "part_at_advance_limit", frames: 130, expect: waits, then: 8 + 2*9,
			msn:  func(l, k int64) (int64, int64) { return l, k + 3 },
			want: func(l, k int64) (int64, int64) { return l, k + 3 }},
		{name: "part_beyond_advance_limit", frames: 130, expect: fails, err: ErrBadRequest,
			msn: func(l, k int64) (int64, int64) { return l, k + 4 }},
		// Segment 2's last part (6) is 6 frames, short: keyframe 180
		// publishes it and completes the segment. Before it, part 2 of
		// segment 3 is four parts ahead; after it, with segment 3 open and
		// empty, three (frames 198-206).
		{name: "next_segment_part_before_last_part", frames: 180, expect: fails, err: ErrBadRequest,
			msn: func(l, k int64) (int64, int64) { return l + 1, 2 }},
		{name: "next_segment_part_at_limit", frames: 181, expect: waits, then: 26,
			msn:  func(l, k int64) (int64, int64) { return l, 2 },
			want: func(l, k int64) (int64, int64) { return l, 2 }},
		{name: "next_segment_part_beyond_limit", frames: 181, expect: fails, err: ErrBadRequest,
			msn: func(l, k int64) (int64, int64) { return l, 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, Config{})
			sy := publish(t, m)
			sy.frames(tc.frames)
			l, k, _ := liveEdge(t, m)
			msn, part := tc.msn(l, k)
			req := mediaReq(msn, part, SkipNone)
			switch tc.expect {
			case fails:
				_, err := fetchNow(m, req)
				if !errors.Is(err, tc.err) {
					t.Fatalf("_HLS_msn=%d&_HLS_part=%d: %v, want %v", msn, part, err, tc.err)
				}
				return
			case now:
				r, err := fetchNow(m, req)
				if err != nil {
					t.Fatalf("_HLS_msn=%d&_HLS_part=%d: %v", msn, part, err)
				}
				if r.Kind != KindBlockingPlaylist {
					t.Errorf("kind %v", r.Kind)
				}
				wm, wp := tc.want(l, k)
				if !hasPart(parseMedia(t, r.Body, m.Config()), wm, wp) {
					t.Fatalf("answer lacks part %d.%d:\n%s", wm, wp, r.Body)
				}
				return
			}
			ch := fetchAsync(m, req)
			waitBlocked(t, m, 1)
			sy.frames(tc.then - 1)
			select {
			case r := <-ch:
				t.Fatalf("_HLS_msn=%d&_HLS_part=%d returned early: %v\n%s", msn, part, r.err, r.resp.Body)
			default:
			}
			if m.Blocked() != 1 {
				t.Fatalf("request stopped waiting before its part")
			}
			sy.next()
			r := await(t, ch, 5*time.Second)
			if r.err != nil {
				t.Fatal(r.err)
			}
			wm, wp := tc.want(l, k)
			if !hasPart(parseMedia(t, r.resp.Body, m.Config()), wm, wp) {
				t.Fatalf("_HLS_msn=%d&_HLS_part=%d answered without part %d.%d:\n%s", msn, part, wm, wp, r.resp.Body)
			}
			if m.Blocked() != 0 {
				t.Errorf("%d requests still counted as blocked", m.Blocked())
			}
		})
	}
}

// TestBlockingReloadTimeout checks RFC 8216bis 6.2.5.2: a request that
// cannot be answered within three target durations gets a 503.
func TestBlockingReloadTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  func(l, k int64) Request
	}{
		{"playlist", func(l, k int64) Request { return mediaReq(l, k+1, SkipNone) }},
		{"preload_hint", func(l, k int64) Request { return fileReq("part" + fmt.Sprint(l*4+k+1) + ".m4s") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// One-second segments: 3 s is the shortest wait the spec allows.
			m := newTestManager(t, Config{TargetDuration: time.Second, PartTarget: 250 * time.Millisecond})
			sy := publish(t, m, func(s *synth) { s.gop = 30 })
			sy.frames(40)
			l, k, mp := liveEdge(t, m)
			if mp.TargetDuration != 1 {
				t.Fatalf("EXT-X-TARGETDURATION %d", mp.TargetDuration)
			}
			req := tc.req(l, k)
			if req.File != "stream.m3u8" {
				req.File = mp.PreloadHint.URI
			}
			start := time.Now()
			r := await(t, fetchAsync(m, req), 10*time.Second)
			if el := time.Since(start); !errors.Is(r.err, ErrUnavailable) || el < 3*time.Second {
				t.Fatalf("%s after %v: %v, want ErrUnavailable after 3s", req.File, el, r.err)
			}
			if m.Blocked() != 0 {
				t.Errorf("%d requests still counted as blocked", m.Blocked())
			}
		})
	}
}

// TestBlockingReloadEnds checks that a request waiting when the stream ends
// gets the playlist with EXT-X-ENDLIST, and that once ended the directives
// are ignored (RFC 8216bis 6.2.5.2).
func TestBlockingReloadEnds(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{GracePeriod: 100 * time.Millisecond, EndedLinger: time.Minute})
	sy := publish(t, m)
	sy.frames(130)
	l, k, _ := liveEdge(t, m)
	nextPart := fetchAsync(m, mediaReq(l, k+1, SkipNone))
	nextSeg := fetchAsync(m, mediaReq(l+1, -1, SkipNone))
	waitBlocked(t, m, 2)
	// The publisher leaves: its last frame makes a part, which answers the
	// first request; the second waits for the end of the grace period.
	sy.pub.Close()
	r := await(t, nextPart, 5*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if mp := parseMedia(t, r.resp.Body, m.Config()); !hasPart(mp, l, k+1) {
		t.Fatalf("answer lacks part %d.%d:\n%s", l, k+1, r.resp.Body)
	}
	start := time.Now()
	r = await(t, nextSeg, 5*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.HasSuffix(r.resp.Body, []byte("#EXT-X-ENDLIST\n")) || !r.resp.Ended {
		t.Fatalf("answer is not the ended playlist:\n%s", r.resp.Body)
	}
	// Not the 503 of a request that waited 3 target durations: the end woke it.
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("ended playlist came %v after the grace period started", el)
	}
	mp := parseMedia(t, r.resp.Body, m.Config())
	if !mp.Endlist || mp.PreloadHint != nil {
		t.Errorf("ended playlist: endlist %v, preload hint %v", mp.Endlist, mp.PreloadHint)
	}
	for _, req := range []Request{mediaReq(l+50, 3, SkipNone), mediaReq(l+1, -1, SkipYes), mediaReq(l+2, 100, SkipV2)} {
		r, err := fetchNow(m, req)
		if err != nil {
			t.Fatalf("ended stream, _HLS_msn=%d&_HLS_part=%d: %v", req.MSN, req.Part, err)
		}
		if !bytes.Equal(r.Body, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body) {
			t.Errorf("ended stream, _HLS_msn=%d&_HLS_part=%d&_HLS_skip=%d: not the full playlist:\n%s", req.MSN, req.Part, req.Skip, r.Body)
		}
	}
}

// TestBlockedLimit checks MaxBlockedRequests: one request more gets a 503 at
// once, the others are answered when the part comes.
func TestBlockedLimit(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{MaxBlockedRequests: 3})
	sy := publish(t, m)
	sy.frames(130)
	l, k, mp := liveEdge(t, m)
	var chs []<-chan fetchResult
	for range 2 {
		chs = append(chs, fetchAsync(m, mediaReq(l, k+1, SkipNone)))
	}
	chs = append(chs, fetchAsync(m, fileReq(mp.PreloadHint.URI)))
	waitBlocked(t, m, 3)
	for _, req := range []Request{mediaReq(l, k+1, SkipNone), fileReq(mp.PreloadHint.URI), mediaReq(-1, -1, SkipNone)} {
		_, err := m.Fetch(context.Background(), req)
		switch {
		case req.MSN >= 0 || strings.HasPrefix(req.File, "part"):
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s msn %d over the limit: %v, want ErrUnavailable", req.File, req.MSN, err)
			}
		case err != nil:
			// A request that does not wait is not limited.
			t.Errorf("plain playlist request: %v", err)
		}
	}
	sy.frames(8)
	for _, ch := range chs {
		if r := await(t, ch, 5*time.Second); r.err != nil {
			t.Error(r.err)
		}
	}
	if m.Blocked() != 0 {
		t.Errorf("%d still blocked", m.Blocked())
	}
	// The slots are free again.
	ch := fetchAsync(m, mediaReq(l, k+2, SkipNone))
	sy.frames(9)
	if r := await(t, ch, 5*time.Second); r.err != nil {
		t.Error(r.err)
	}
}

// TestBlockedRequestCancelled checks that a viewer that goes away stops
// waiting and frees its slot.
func TestBlockedRequestCancelled(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(130)
	l, k, _ := liveEdge(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() {
		_, err := m.Fetch(ctx, mediaReq(l, k+1, SkipNone))
		ch <- err
	}()
	waitBlocked(t, m, 1)
	cancel()
	select {
	case err := <-ch:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled request still waiting")
	}
	waitBlocked(t, m, 0)
}

// TestPreloadHint checks EXT-X-PRELOAD-HINT: it names the next part, a
// request for it waits until the part is complete and then gets it whole
// (RFC 8216bis 6.2.6), and a part past the hint is not found.
func TestPreloadHint(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(130)
	l, k, mp := liveEdge(t, m)
	hint := mp.PreloadHint
	if hint == nil {
		t.Fatal("no preload hint")
	}
	last := partNumber(t, mp.Parts[k].URI)
	if got := partNumber(t, hint.URI); got != last+1 {
		t.Fatalf("preload hint %s, last part part%d.m4s", hint.URI, last)
	}
	if _, err := fetchNow(m, fileReq(fmt.Sprintf("part%d.m4s", last+2))); !errors.Is(err, ErrNotFound) {
		t.Errorf("part after the hinted one: %v, want ErrNotFound", err)
	}
	ch := fetchAsync(m, fileReq(hint.URI))
	waitBlocked(t, m, 1)
	// Part 15 holds frames 129-137: 8 more to write, the last completes it.
	sy.frames(7)
	select {
	case r := <-ch:
		t.Fatalf("hinted part returned before it was complete: %v", r.err)
	default:
	}
	sy.next()
	r := await(t, ch, 5*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.resp.Kind != KindPart || r.resp.ContentType != "video/mp4" {
		t.Errorf("kind %v, content type %q", r.resp.Kind, r.resp.ContentType)
	}
	v := decodeFragments(t, r.resp.Body)[0].tracks[1]
	if len(v.samples) != 9 {
		t.Errorf("hinted part has %d frames, want 9", len(v.samples))
	}
	if again := mustFetch(t, m, fileReq(hint.URI)); !bytes.Equal(again.Body, r.resp.Body) {
		t.Error("hinted part changed after it was served")
	}
	if mp := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, m.Config()); !hasPart(mp, l, k+1) || mp.Parts[k+1].URI != hint.URI {
		t.Errorf("playlist does not list the hinted part as %d.%d", l, k+1)
	}
}

// TestPartWithoutMSN documents the packager's side of RFC 8216bis 6.2.5.2:
// the origin answers _HLS_part without _HLS_msn with a 400; a Request that
// still carries it gets the current playlist, without waiting.
func TestPartWithoutMSN(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(130)
	r := mustFetch(t, m, mediaReq(-1, 5, SkipNone))
	if r.Kind != KindPlaylist || !bytes.Equal(r.Body, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body) {
		t.Errorf("kind %v:\n%s", r.Kind, r.Body)
	}
}

// TestGzipOnlyWhenAccepted checks that a playlist is compressed only for a
// request that accepts gzip, and that the compressed bytes are the body.
func TestGzipOnlyWhenAccepted(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(130)
	for _, tc := range []struct {
		name string
		req  Request
	}{
		{"media", mediaReq(-1, -1, SkipNone)},
		{"multivariant", fileReq("index.m3u8")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := mustFetch(t, m, tc.req); r.Gzip != nil {
				t.Errorf("gzip computed for a client that did not ask: %d bytes", len(r.Gzip))
			}
			req := tc.req
			req.Gzip = true
			r := mustFetch(t, m, req)
			if r.Gzip == nil {
				t.Fatal("no gzip for a client that accepts it")
			}
			zr, err := gzip.NewReader(bytes.NewReader(r.Gzip))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, r.Body) {
				t.Errorf("gunzipped %d bytes (err %v), want the %d-byte body", len(got), err, len(r.Body))
			}
		})
	}
}

// TestPlaylistVersionShared: requests released by the same part get one
// rendering of the playlist, made once outside the stream lock: the same
// bytes, with the date ranges between the header and the segments.
func TestPlaylistVersionShared(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(130)
	s, _ := m.Stream("test")
	for i := range 50 {
		id := fmt.Sprintf("cue%d", i)
		if _, err := s.AddEvent(Event{ID: id, Time: time.Duration(i) * 20 * time.Millisecond, Duration: time.Hour,
			DateRange: eventDateRange(id)}); err != nil {
			t.Fatal(err)
		}
	}
	l, k, _ := liveEdge(t, m)
	const n = 20
	chs := make([]<-chan fetchResult, n)
	for i := range chs {
		chs[i] = fetchAsync(m, mediaReq(l, k+1, SkipNone))
	}
	waitBlocked(t, m, n)
	sy.frames(10)
	var first []byte
	for _, ch := range chs {
		r := await(t, ch, 5*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if first == nil {
			first = r.resp.Body
			continue
		}
		if &r.resp.Body[0] != &first[0] {
			t.Fatal("requests released together got different renderings")
		}
	}
	mp := parseMedia(t, first, m.Config())
	if !hasPart(mp, l, k+1) {
		t.Fatalf("playlist without part %d.%d", l, k+1)
	}
	head, rest, _ := bytes.Cut(first, []byte("#EXT-X-DATERANGE:"))
	if bytes.Contains(head, []byte("#EXTINF")) || bytes.Count(first, []byte("#EXT-X-DATERANGE:")) != 50 ||
		bytes.Contains(rest[:bytes.LastIndex(rest, []byte("#EXT-X-DATERANGE:"))], []byte("#EXTINF")) {
		t.Fatalf("date ranges not all between the header and the segments:\n%s", first)
	}
}

// TestFetchContentType: every file the playlists name comes with its
// Content-Type and Kind, so the origin needs no table of its own.
func TestFetchContentType(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(5 * 30)
	fm := parsePlaylist(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body)
	tm := parsePlaylist(t, mustFetch(t, m, fileReq(hlsname.TSMedia)).Body)
	if len(fm.Segments) == 0 || len(fm.Parts) == 0 || fm.Map == nil || len(tm.Segments) == 0 {
		t.Fatalf("playlists without segments, parts or map")
	}
	const (
		typePlaylist = "application/vnd.apple.mpegurl"
		typeMP4      = "video/mp4"
		typeTS       = "video/mp2t"
	)
	for _, tt := range []struct {
		file  string
		kind  Kind
		ctype string
	}{
		{hlsname.Multivariant, KindMultivariant, typePlaylist},
		{hlsname.Media, KindPlaylist, typePlaylist},
		{fm.Map.URI, KindInit, typeMP4},
		{fm.Segments[0].URI, KindSegment, typeMP4},
		{fm.Parts[0].URI, KindPart, typeMP4},
		{hlsname.TSMultivariant, KindMultivariant, typePlaylist},
		{hlsname.TSMedia, KindPlaylist, typePlaylist},
		{tm.Segments[0].URI, KindSegment, typeTS},
	} {
		resp := mustFetch(t, m, fileReq(tt.file))
		if resp.Kind != tt.kind || resp.ContentType != tt.ctype {
			t.Errorf("%s: kind %v, Content-Type %q; want %v, %q", tt.file, resp.Kind, resp.ContentType, tt.kind, tt.ctype)
		}
	}
}

// TestBlockedFairShare checks the per-client and per-stream caps: a client
// at its cap gets 503 while another client still waits for the same part,
// a stream at its cap refuses its next blocked request, and every slot is
// handed back once the part comes.
func TestBlockedFairShare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		cfg         Config
		flood       int    // blocked requests the flooding client gets
		other       string // the second client's address
		otherRefuse bool   // whether its request is refused too
	}{
		{"per client", Config{MaxBlockedRequests: 100, MaxBlockedPerClient: 4}, 4, "192.0.2.2", false},
		{"per stream", Config{MaxBlockedRequests: 100, MaxBlockedPerClient: 50, MaxBlockedPerStream: 4}, 4, "192.0.2.2", true},
		{"global", Config{MaxBlockedRequests: 4, MaxBlockedPerClient: 50}, 4, "192.0.2.2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, tt.cfg)
			sy := publish(t, m)
			sy.frames(130)
			l, k, _ := liveEdge(t, m)
			req := func(client string) Request {
				r := mediaReq(l, k+1, SkipNone)
				r.Client = client
				return r
			}
			var chs []<-chan fetchResult
			for range tt.flood {
				chs = append(chs, fetchAsync(m, req("192.0.2.1")))
			}
			waitBlocked(t, m, int64(tt.flood))
			if _, err := fetchNow(m, req("192.0.2.1")); !errors.Is(err, ErrUnavailable) {
				t.Errorf("flooding client over its share: %v, want ErrUnavailable", err)
			}
			other := fetchAsync(m, req(tt.other))
			if tt.otherRefuse {
				if r := await(t, other, 5*time.Second); !errors.Is(r.err, ErrUnavailable) {
					t.Errorf("other client with no slot left: %v, want ErrUnavailable", r.err)
				}
			} else {
				waitBlocked(t, m, int64(tt.flood)+1)
				chs = append(chs, other)
			}
			sy.frames(8)
			for _, ch := range chs {
				if r := await(t, ch, 5*time.Second); r.err != nil {
					t.Error(r.err)
				}
			}
			m.clientsMu.Lock()
			left := len(m.clients)
			m.clientsMu.Unlock()
			if m.Blocked() != 0 || left != 0 {
				t.Errorf("after the part: %d blocked, %d clients counted", m.Blocked(), left)
			}
		})
	}
}

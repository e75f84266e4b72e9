package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/internal/testpub"
)

// fixtureFrames returns the fixture's frames in send order (by DTS), the
// file repeated loops times with timestamps continuing.
func fixtureFrames(t *testing.T, loops int) []testpub.Frame {
	t.Helper()
	video, audio, err := testpub.ReadFLV(fixture)
	if err != nil {
		t.Fatal(err)
	}
	one := append(slices.Clone(video), audio...)
	slices.SortStableFunc(one, func(a, b testpub.Frame) int { return int(a.DTS - b.DTS) })
	span := one[len(one)-1].DTS + 40*time.Millisecond
	var all []testpub.Frame
	for i := range loops {
		for _, f := range one {
			f.DTS += time.Duration(i) * span
			f.PTS += time.Duration(i) * span
			all = append(all, f)
		}
	}
	return all
}

// sendFrames writes frames with c, paced at speed times real time by their
// original DTS; shift(dts) is added to both timestamps of the frame sent,
// so a test can make the publisher's clock jump. It returns the number of
// video frames sent.
func sendFrames(ctx context.Context, c *testpub.Client, frames []testpub.Frame, speed float64,
	shift func(dts time.Duration) time.Duration) (int, error) {
	start := time.Now()
	video := 0
	for _, f := range frames {
		due := start.Add(time.Duration(float64(f.DTS) / speed))
		select {
		case <-ctx.Done():
			return video, ctx.Err()
		case <-time.After(time.Until(due)):
		}
		if shift != nil {
			d := shift(f.DTS)
			f.DTS += d
			f.PTS += d
		}
		if err := c.WriteFrame(f); err != nil {
			return video, err
		}
		if f.Codec.IsVideo() {
			video++
		}
	}
	return video, nil
}

// mediaPlaylist fetches and parses a media playlist.
func mediaPlaylist(t *testing.T, url string) *playlist.Media {
	t.Helper()
	code, body, _ := e2etest.Get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", url, code)
	}
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("playlist: %v\n%s", err, body)
	}
	m, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist:\n%s", body)
	}
	return m
}

// videoSamples counts the video (track 1) samples of an fMP4 file.
func videoSamples(t *testing.T, b []byte) int {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("mp4ff: %v", err)
	}
	return countVideoSamples(f)
}

// listedVideoSamples counts the video samples of every complete segment
// and trailing part a media playlist lists.
func listedVideoSamples(t *testing.T, base string, m *playlist.Media) int {
	t.Helper()
	n := 0
	for _, seg := range m.Segments {
		_, b, _ := e2etest.Get(t, base+seg.URI)
		n += videoSamples(t, b)
	}
	for _, p := range m.Parts {
		_, b, _ := e2etest.Get(t, base+p.URI)
		n += videoSamples(t, b)
	}
	return n
}

// nextMSN is the media sequence number of the segment after the last one a
// playlist lists.
func nextMSN(m *playlist.Media) int {
	return m.MediaSequence + len(m.Segments)
}

// TestE2EFaultPublisherKilledMidPart kills a publisher's connection in the
// middle of a part: every frame it sent is published (the open part and
// segment are flushed), the playlist waits for the publisher without
// hinting a part that will not come, and when it reconnects the playlist
// continues after a discontinuity, without restarting its sequence numbers.
func TestE2EFaultPublisherKilledMidPart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t, func(c *server.Config) { c.GracePeriod = 20 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := srv.HTTP + "/live/kill/"

	c, err := testpub.Dial(ctx, srv.RTMP+"/live/kill")
	if err != nil {
		t.Fatal(err)
	}
	// 2.9 s of media: 8.7 parts of 333 ms, so the connection dies with a
	// part open.
	var frames []testpub.Frame
	for _, f := range fixtureFrames(t, 1) {
		if f.DTS < 2900*time.Millisecond {
			frames = append(frames, f)
		}
	}
	sent, err := sendFrames(ctx, c, frames, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Killed: the socket closes without FCUnpublish or deleteStream.
	_ = c.Close()

	var m *playlist.Media
	got := 0
	e2etest.WaitUntil(t, 10*time.Second, "every video frame sent before the kill in the playlist", func() bool {
		if code, _, _ := e2etest.Get(t, base+"stream.m3u8"); code != 200 {
			return false
		}
		m = mediaPlaylist(t, base+"stream.m3u8")
		got = listedVideoSamples(t, base, m)
		return got == sent
	})
	if m.Endlist {
		t.Error("the playlist ended within the grace period")
	}
	if m.PreloadHint != nil {
		t.Errorf("a part is hinted while no publisher is connected: %s", m.PreloadHint.URI)
	}
	if len(m.Parts) != 0 {
		t.Errorf("the open segment was not closed: %d trailing parts", len(m.Parts))
	}
	before := nextMSN(m)

	// The publisher comes back: a player's blocking request for the next
	// segment is answered with it.
	pubErr := make(chan error, 1)
	go func() { pubErr <- testpub.Publish(ctx, srv.RTMP+"/live/kill", fixture, testpub.Options{}) }()
	code, body, _ := e2etest.Get(t, fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d", base, before))
	if code != http.StatusOK {
		t.Fatalf("blocking request after the reconnect: %d", code)
	}
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatal(err)
	}
	after := pl.(*playlist.Media)
	if nextMSN(after) <= before || after.MediaSequence < m.MediaSequence {
		t.Errorf("playlist did not continue: sequence %d+%d before, %d+%d after",
			m.MediaSequence, len(m.Segments), after.MediaSequence, len(after.Segments))
	}
	if !bytes.Contains(body, []byte("#EXT-X-DISCONTINUITY\n")) {
		t.Errorf("no discontinuity between the publishers:\n%s", body)
	}
	if err := <-pubErr; err != nil {
		t.Errorf("republish: %v", err)
	}
}

// TestE2EFaultTimestampJumps publishes with a clock that jumps back 3 s,
// then forward 5 hours (past RTMP's 24-bit timestamps, into extended
// timestamps): the playlist keeps advancing through blocking reloads, every
// part's decode time (tfdt, read by mp4ff) continues the previous part's,
// and no frame is lost.
func TestE2EFaultTimestampJumps(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t, func(c *server.Config) { c.GracePeriod, c.EndedLinger = time.Second, 10*time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := srv.HTTP + "/live/jump/"

	c, err := testpub.Dial(ctx, srv.RTMP+"/live/jump")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frames := fixtureFrames(t, 3) // 12 s
	shift := func(dts time.Duration) time.Duration {
		switch {
		case dts < 4*time.Second:
			return 0
		case dts < 8*time.Second:
			return -3 * time.Second // back: timestamps repeat 1 s to 5 s
		default:
			return 5 * time.Hour // forward, beyond 0xFFFFFF ms
		}
	}
	checker := newPlaylistChecker(t, base)
	sendDone := make(chan struct{})
	var sent int
	var sendErr error
	go func() {
		defer close(sendDone)
		sent, sendErr = sendFrames(ctx, c, frames, 2, shift)
		_ = c.Close()
	}()
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"stream.m3u8")
		return code == 200
	})
	checker.start(ctx)
	<-sendDone
	if sendErr != nil {
		t.Fatalf("publish: %v", sendErr)
	}
	checker.wait()
	if !checker.ended {
		t.Fatal("the playlist did not run to its end")
	}
	if checker.videoSamples != sent {
		t.Errorf("video samples in segments: %d, sent %d", checker.videoSamples, sent)
	}
	if checker.discs != 0 {
		t.Errorf("%d discontinuities for one publisher's clock jumps", checker.discs)
	}
	if len(checker.segments) < 5 {
		t.Errorf("only %d segments for 12 s of media", len(checker.segments))
	}
	t.Logf("playlist versions %d, parts %d, segments %d, video frames %d", checker.versions, len(checker.parts), len(checker.segments), sent)
}

// heapInUse returns the heap and stack bytes in use after a GC.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// rssBytes returns this process's resident set size (the server runs in
// it), or 0 where /proc is missing.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return kb << 10
}

// TestE2EFaultStalledViewers opens viewers that ask for the largest
// segment many times over on one connection and never read: the server's
// writes to them block. Another viewer keeps following the live edge part
// by part meanwhile, and the memory the stalled viewers hold stays small:
// no copy of the segment per connection.
func TestE2EFaultStalledViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t)
	publishFor(t, srv.RTMP+"/live/stall")
	base := srv.HTTP + "/live/stall/"
	var m *playlist.Media
	e2etest.WaitUntil(t, 20*time.Second, "two complete segments", func() bool {
		if code, _, _ := e2etest.Get(t, base+"stream.m3u8"); code != 200 {
			return false
		}
		m = mediaPlaylist(t, base+"stream.m3u8")
		return len(m.Segments) >= 2
	})
	var seg string
	segSize := 0
	for _, s := range m.Segments {
		_, b, _ := e2etest.Get(t, base+s.URI)
		if len(b) > segSize {
			seg, segSize = s.URI, len(b)
		}
	}

	rss0, goroutines0 := rssBytes(), runtime.NumGoroutine()
	const stalled, pipelined = 200, 64
	req := strings.Repeat(fmt.Sprintf("GET /live/stall/%s HTTP/1.1\r\nHost: x\r\n\r\n", seg), pipelined)
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	for range stalled {
		c, err := net.Dial("tcp", hostOf(srv.HTTP))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}

	// A viewer follows the live edge for 6 s with blocking reloads and gets
	// every part, each checked with mp4ff.
	checker := newPlaylistChecker(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	start := time.Now()
	checker.run(ctx)
	cancel()
	for _, e := range checker.errs {
		t.Error(e)
	}
	// 6 s at 333 ms per part, minus a margin for the start.
	if n := len(checker.parts); n < 12 {
		t.Errorf("the live viewer got %d parts in %v beside %d stalled viewers", n, time.Since(start).Round(time.Millisecond), stalled)
	}

	// What the stalled viewers hold: the memory in use with them, less the
	// memory in use once they are gone and the server has let go of their
	// connections.
	held, rss1 := heapInUse(), rssBytes()
	closeAll()
	e2etest.WaitUntil(t, 10*time.Second, "the server to drop the stalled connections", func() bool {
		return runtime.NumGoroutine() <= goroutines0+20
	})
	released := heapInUse()
	perViewer := (int64(held) - int64(released)) / stalled
	t.Logf("segment %s: %d bytes; %d stalled viewers x %d pipelined requests hold %d B of heap and stack each; RSS %d -> %d MiB",
		seg, segSize, stalled, pipelined, perViewer, rss0>>20, rss1>>20)
	// Each asked for 64 copies of the segment (7 MB): what it holds is
	// net/http's per-connection buffers and goroutine, not its response.
	if perViewer > 128<<10 {
		t.Errorf("each stalled viewer holds %d bytes of heap and stack", perViewer)
	}
	// RSS is coarser (the race detector's shadow memory multiplies it):
	// below 1 MiB per viewer still rules out holding what each asked for.
	if rss1 > rss0 && rss1-rss0 > stalled<<20 {
		t.Errorf("RSS grew by %d MiB with %d stalled viewers", (rss1-rss0)>>20, stalled)
	}
}

// TestE2EFaultRestart restarts the server mid-stream on the same ports and
// cue store: a cue scheduled before the restart is still there after it,
// and once the publisher is back, the stream is served again at the same
// URLs, blocking playlist requests included, with the cue in its playlist.
func TestE2EFaultRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	store := t.TempDir() + "/cues.db"
	srv := startServer(t, func(c *server.Config) { c.CueStore = store })
	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		_ = testpub.Publish(pubCtx, srv.RTMP+"/live/re", fixture, testpub.Options{Loops: 1000})
	}()
	base := srv.HTTP + "/live/re/"
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})

	var doc map[string]any
	b, err := os.ReadFile("../../testdata/cues_example.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["id"] = "after-restart"
	doc["at"] = time.Now().Add(40 * time.Second).UTC().Format(time.RFC3339Nano)
	doc["duration_ms"] = 60000
	body, _ := json.Marshal(doc)
	api := srv.HTTP + "/api/v1/streams/re/cues"
	resp, err := http.Post(api, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	created, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(created), `"state":"scheduled"`) {
		t.Fatalf("POST scheduled cue: %d %s", resp.StatusCode, created)
	}

	// Restart: stop the server (and with it the publisher's connection),
	// start it again on the same ports and store.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stopPub()
	<-pubDone
	httpAddr, rtmpAddr := hostOf(srv.HTTP), strings.TrimPrefix(srv.RTMP, "rtmp://")
	srv2 := startServer(t, func(c *server.Config) { c.CueStore, c.HTTP, c.RTMP = store, httpAddr, rtmpAddr })
	if srv2.HTTP != srv.HTTP || srv2.RTMP != srv.RTMP {
		t.Fatalf("restarted on other ports: %s %s", srv2.HTTP, srv2.RTMP)
	}

	code, got, _ := e2etest.Get(t, api+"/after-restart")
	if code != http.StatusOK || !strings.Contains(string(got), `"state":"scheduled"`) {
		t.Fatalf("GET the cue after the restart: %d %s", code, got)
	}

	// The publisher comes back (OBS retries); players at the old URLs
	// recover: a blocking request for the next part is answered.
	publishFor(t, srv2.RTMP+"/live/re")
	e2etest.WaitUntil(t, 15*time.Second, "the stream to be served again", func() bool {
		code, _, _ := e2etest.Get(t, base+"stream.m3u8")
		return code == 200
	})
	m := mediaPlaylist(t, base+"stream.m3u8")
	start := time.Now()
	next := fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d&_HLS_part=%d", base, m.MediaSequence+len(m.Segments), len(m.Parts))
	if code, _, _ := e2etest.Get(t, next); code != http.StatusOK {
		t.Fatalf("blocking request after the restart: %d", code)
	}
	if d := time.Since(start); d > 3*2*time.Second {
		t.Errorf("blocking request took %v", d)
	}
	e2etest.WaitUntil(t, 10*time.Second, "the restored cue's DATERANGE in the playlist", func() bool {
		_, pl, _ := e2etest.Get(t, base+"stream.m3u8")
		return strings.Contains(string(pl), `#EXT-X-DATERANGE:ID="after-restart"`)
	})
}

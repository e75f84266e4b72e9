package live

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/internal/testpub"
)

const fixture = "../../testdata/h264_aac.flv"

// received is the PTS of what gohlslib's client read from a stream.
type received struct {
	videoPTS []int64
	audioPTS []int64
}

// readHLS reads a stream with gohlslib's Client until the playlist ends and
// keeps the PTS of every AU.
func readHLS(t *testing.T, url string, timeout time.Duration) *received {
	t.Helper()
	c := readHLSCodecs(t, url, identAU, timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &received{}
	for _, a := range c.video {
		r.videoPTS = append(r.videoPTS, a.pts)
	}
	for _, a := range c.audio {
		r.audioPTS = append(r.audioPTS, a.pts)
	}
	return r
}

// identAU leaves an access unit as it is.
func identAU(au [][]byte) [][]byte { return au }

// TestE2EPublisherToHLS publishes the fixture over RTMP with a publisher
// independent of the server's RTMP stack, reads the LL-HLS output with
// gohlslib's Client, and compares every access unit with the fixture. A
// second reader follows the playlist with blocking reloads and checks every
// playlist and part.
func TestE2EPublisherToHLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t, func(c *server.Config) { c.GracePeriod, c.EndedLinger = time.Second, 10*time.Second })
	video, audio, err := testpub.ReadFLV(fixture)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pubErr := make(chan error, 1)
	go func() { pubErr <- testpub.Publish(ctx, srv.RTMP+"/live/e2e", fixture, testpub.Options{Loops: 2}) }()

	base := srv.HTTP + "/live/e2e/"
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})
	_, mv, _ := e2etest.Get(t, base+"index.m3u8")
	for _, want := range []string{`CODECS="avc1.64`, `mp4a.40.2"`, "RESOLUTION=640x360", "FRAME-RATE=", "AVERAGE-BANDWIDTH="} {
		if !strings.Contains(string(mv), want) {
			t.Errorf("multivariant playlist lacks %s:\n%s", want, mv)
		}
	}

	checker := newPlaylistChecker(t, base)
	// The fixture loops with a gap in its audio: check video continuity only.

	checker.start(ctx)

	r := readHLS(t, base+"index.m3u8", 40*time.Second)
	if err := <-pubErr; err != nil {
		t.Fatalf("publish: %v", err)
	}
	checker.wait()
	if !checker.ended {
		t.Error("the playlist never got EXT-X-ENDLIST after the grace period")
	}
	if len(checker.maps) != 1 {
		t.Errorf("init segments: %v", checker.maps)
	}
	t.Logf("playlist versions checked: %d, parts checked: %d", checker.versions, len(checker.parts))

	// Every video sample of the publication is in the segments.
	if checker.videoSamples != 2*len(video) {
		t.Errorf("video samples in segments: %d, fixture sent %d", checker.videoSamples, 2*len(video))
	}

	// gohlslib's client joins at the live edge (its low-latency mode starts
	// at the preload hint) and can miss a whole part when a part completes
	// between its part download and its next non-blocking playlist reload
	// (it never asks for the playlist with _HLS_msn). Completeness is checked
	// on the segments above; here every AU gohlslib decoded must be one of
	// the publisher's frames, in order, with the publisher's exact PTS.
	want := loopPTS(video, audio, 2, 90000)
	if err := matchSubsequence(r.videoPTS, want, 0); err != nil {
		t.Fatalf("video: %v", err)
	}
	wantAudio := loopPTS(audio, video, 2, 48000)
	if len(r.audioPTS) < 50 {
		t.Fatalf("AAC frames: got %d", len(r.audioPTS))
	}
	// Audio is on the exact 1024-sample grid that FLV's millisecond
	// timestamps round: compare within 1 ms.
	if err := matchSubsequence(r.audioPTS, wantAudio, 48); err != nil {
		t.Fatalf("AAC: %v", err)
	}
	t.Logf("received %d video AUs and %d AAC frames, PTS equal to the fixture", len(r.videoPTS), len(r.audioPTS))
}

// TestE2EFFmpegOBS publishes with real ffmpeg the way OBS does and reads the
// output with gohlslib's Client.
func TestE2EFFmpegOBS(t *testing.T) {
	ffmpeg := needFFmpeg(t)
	srv := startServer(t, func(c *server.Config) { c.GracePeriod = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high",
		"-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-f", "flv", srv.RTMP+"/live/obs")
	out := &strings.Builder{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := srv.HTTP + "/live/obs/"
	e2etest.WaitUntil(t, 20*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})
	checker := startStrictChecker(ctx, t, base)
	r := readHLS(t, base+"index.m3u8", 40*time.Second)
	waitFFmpeg(t, cmd, out)
	checker.wait()
	// 6 s at 30 fps, every frame in the segments; x264 with zerolatency
	// sends no B-frames, so the PTS gohlslib reads rise a frame at a time.
	if checker.videoSamples != 180 {
		t.Errorf("video samples in segments: %d, ffmpeg sent 180", checker.videoSamples)
	}
	if len(r.videoPTS) < 30 {
		t.Errorf("gohlslib read %d video AUs", len(r.videoPTS))
	}
	for i := 1; i < len(r.videoPTS); i++ {
		if d := r.videoPTS[i] - r.videoPTS[i-1]; d < 2900 || d > 3100 {
			t.Fatalf("video AU %d: PTS step %d, want 3000 (30 fps)", i, d)
		}
	}
	for i := 1; i < len(r.audioPTS); i++ {
		if d := r.audioPTS[i] - r.audioPTS[i-1]; d != 1024 {
			t.Fatalf("AAC frame %d: PTS step %d, want 1024", i, d)
		}
	}
	t.Logf("ffmpeg: %d video AUs, %d AAC frames, %d playlist versions checked", len(r.videoPTS), len(r.audioPTS), checker.versions)
}

// TestE2EReconnect covers OBS's reconnect: a publisher that hangs is
// replaced by a new publish with the same key while viewers stay attached;
// a publisher that leaves and comes back within the grace period continues
// the playlist after EXT-X-DISCONTINUITY; after the grace period the
// playlist ends, and later the stream's URLs answer 404.
func TestE2EReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t, func(c *server.Config) { c.GracePeriod, c.EndedLinger = 3*time.Second, 2*time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := srv.RTMP + "/live/re"
	base := srv.HTTP + "/live/re/"

	// 1. A publisher that stalls after 3 s and keeps its socket open.
	stalled := make(chan error, 1)
	go func() { stalled <- testpub.Publish(ctx, url, fixture, testpub.Options{StallAfter: 3 * time.Second}) }()
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})
	checker := newPlaylistChecker(t, base)
	checker.start(ctx)

	// 2. OBS reconnects with the same key while the old session hangs.
	if err := testpub.Publish(ctx, url, fixture, testpub.Options{}); err != nil {
		t.Fatalf("republish while the old session hangs: %v", err)
	}
	select {
	case err := <-stalled:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("the hung session was not closed by the server: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the hung session was not closed after being replaced")
	}
	if !strings.Contains(srv.Log.String(), "publisher replaced") {
		t.Error("no log line for the replaced publisher")
	}

	// 3. Drop and come back within the grace period.
	if err := testpub.Publish(ctx, url, fixture, testpub.Options{}); err != nil {
		t.Fatalf("publish after a drop: %v", err)
	}
	checker.wait()
	if !checker.ended {
		t.Fatal("the playlist did not end after the grace period")
	}
	_, body, _ := e2etest.Get(t, base+"stream.m3u8")
	if n := strings.Count(string(body), "#EXT-X-DISCONTINUITY\n"); n < 1 && checker.discs < 2 {
		t.Errorf("discontinuities: %d in the last playlist, %d seen:\n%s", n, checker.discs, body)
	}
	if len(checker.maps) < 2 {
		t.Errorf("want a new EXT-X-MAP per publisher, got %v", checker.maps)
	}
	e2etest.WaitUntil(t, 10*time.Second, "the ended stream's URLs to answer 404", func() bool {
		code, _, _ := e2etest.Get(t, base+"stream.m3u8")
		return code == 404
	})
}

// TestE2EBadInput sends garbage to the RTMP port while a publisher streams:
// that connection is closed with a log line, and the stream carries on.
func TestE2EBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { _ = testpub.Publish(ctx, srv.RTMP+"/live/good", fixture, testpub.Options{Loops: 3}) }()
	base := srv.HTTP + "/live/good/"
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})
	for _, garbage := range []string{"GET / HTTP/1.1\r\n\r\n", "\x03" + strings.Repeat("\xff", 4000), "\x00\x01\x02"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.RTMP, "rtmp://"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte(garbage))
		_ = conn.Close()
	}
	// The stream keeps producing: a blocking request for two segments ahead
	// of now completes.
	_, body, _ := e2etest.Get(t, base+"stream.m3u8")
	var seq, n int
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:") {
			fmt.Sscanf(line, "#EXT-X-MEDIA-SEQUENCE:%d", &seq)
		}
		if strings.HasPrefix(line, "#EXTINF") {
			n++
		}
	}
	code, _, _ := e2etest.Get(t, fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d", base, seq+n+1))
	if code != 200 {
		t.Fatalf("stream stalled after garbage on the RTMP port: %d", code)
	}
	_, bad, _ := e2etest.Get(t, base+"stream.m3u8?_HLS_part=1")
	_ = bad
	if code, _, _ := e2etest.Get(t, base+"stream.m3u8?_HLS_part=1"); code != 400 {
		t.Errorf("_HLS_part without _HLS_msn: %d, want 400", code)
	}
	if code, _, _ := e2etest.Get(t, fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d", base, seq+n+10)); code != 400 {
		t.Errorf("_HLS_msn far ahead: %d, want 400", code)
	}
	if code, _, _ := e2etest.Get(t, srv.HTTP+"/live/good/../../etc/passwd"); code != 404 {
		t.Errorf("path traversal: %d, want 404", code)
	}
}

// loopPTS returns the PTS of frames sent loops times by testpub, each loop's
// timestamps continuing the previous one (testpub's loop span: the file's
// DTS range plus one video frame), in units of rate.
func loopPTS(frames, other []testpub.Frame, loops int, rate int64) []int64 {
	all := append(append([]testpub.Frame(nil), frames...), other...)
	first, last := all[0].DTS, all[0].DTS
	for _, f := range all {
		first, last = min(first, f.DTS), max(last, f.DTS)
	}
	var vdts []time.Duration
	for _, f := range all {
		if f.Codec.IsVideo() {
			vdts = append(vdts, f.DTS)
		}
	}
	step := time.Millisecond
	if n := len(vdts); n >= 2 {
		step = max(vdts[n-1]-vdts[n-2], step)
	}
	span := last - first + step
	var out []int64
	for l := range loops {
		for _, f := range frames {
			out = append(out, int64(f.PTS+time.Duration(l)*span)*rate/int64(time.Second))
		}
	}
	return out
}

// matchSubsequence checks that got, shifted so that its first entry meets
// some entry of want, is a subsequence of want (both in decode order) with
// equal PTS within tol.
func matchSubsequence(got, want []int64, tol int64) error {
	err := matchInOrder(ptsOnly(got), ptsOnly(want), tol, func(i int, g timedAU, _ int64) error {
		return fmt.Errorf("received frame %d (PTS %d from the first) is not a publisher frame", i, g.pts-got[0])
	})
	if errors.Is(err, errNoAlignment) {
		return nil // nothing was sent to align with
	}
	return err
}

// ptsOnly are AUs of these PTS, all with the same (zero) payload hash.
func ptsOnly(pts []int64) []timedAU {
	out := make([]timedAU, len(pts))
	for i, p := range pts {
		out[i].pts = p
	}
	return out
}

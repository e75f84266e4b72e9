package live

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// TestE2ERTSPPull pulls a camera configured in rtsp_pull: ffmpeg publishes
// H.264 and AAC to an RTSP relay standing in for the camera, shopcast
// reads it from there (DESCRIBE/PLAY) and serves it as /live/cam/, which
// gohlslib's Client plays to its end. The camera then comes back, and the
// pull reconnects by itself. The password in the camera URL never reaches
// the log.
func TestE2ERTSPPull(t *testing.T) {
	ffmpeg := needFFmpeg(t)
	const camPass = "cam-pa55-9d8c"
	relay := e2etest.StartRTSPRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	camera := func(seconds int) (*exec.Cmd, *strings.Builder) {
		t.Helper()
		cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
			"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", fmt.Sprint(seconds),
			"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "800k",
			"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
			"-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+relay.Addr+"/cam")
		out := &strings.Builder{}
		cmd.Stderr = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		e2etest.WaitUntil(t, 15*time.Second, "the camera to record into the relay", relay.Publishing)
		return cmd, out
	}

	cmd, out := camera(6)
	srv := startServer(t, func(c *server.Config) {
		c.GracePeriod, c.EndedLinger = time.Second, 2*time.Second
		c.RTSPPull = map[string]string{"cam": "rtsp://viewer:" + camPass + "@" + relay.Addr + "/cam"}
	})
	base := srv.HTTP + "/live/cam/"
	e2etest.WaitUntil(t, 20*time.Second, "the pulled stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})
	_, mv, _ := e2etest.Get(t, base+"index.m3u8")
	cs := strings.Split(strings.Trim(strings.TrimPrefix(codecsAttr(string(mv)), "CODECS="), `"`), ",")
	if len(cs) != 2 || !strings.HasPrefix(cs[0], "avc1.") || cs[1] != "mp4a.40.2" || !strings.Contains(string(mv), "RESOLUTION=640x360") {
		t.Errorf("multivariant playlist of the pulled camera (want H.264 and AAC, 640x360):\n%s", mv)
	}

	checker := startStrictChecker(ctx, t, base)
	r := readHLSCodecs(t, base+"index.m3u8", identAU, 40*time.Second)
	waitFFmpeg(t, cmd, out)
	checker.wait()
	if !checker.ended {
		t.Error("the playlist never got EXT-X-ENDLIST after the camera stopped")
	}
	r.mu.Lock()
	// The pull joins a camera already recording, at its next key frame
	// (1 s GOP): at least 4 of its 6 s reach the segments. gohlslib starts
	// its read nearer the live edge: at least 2 s of it.
	if checker.videoSamples < 120 {
		t.Errorf("video samples in segments: %d, want at least 120 of the 180 ffmpeg sent", checker.videoSamples)
	}
	if len(r.video) < 60 || len(r.audio) < 90 {
		t.Errorf("gohlslib read %d video AUs and %d AAC frames", len(r.video), len(r.audio))
	}
	checkFrameSteps(t, r)
	t.Logf("pulled: %d video samples in segments; %d video AUs, %d AAC frames read by gohlslib", checker.videoSamples, len(r.video), len(r.audio))
	r.mu.Unlock()

	// The camera comes back; the pull, retrying with backoff, publishes
	// it again under the same name.
	cmd, _ = camera(20)
	e2etest.WaitUntil(t, 30*time.Second, "the stream to be live again", func() bool {
		code, body, _ := e2etest.Get(t, base+"stream.m3u8")
		return code == 200 && !strings.Contains(string(body), "#EXT-X-ENDLIST") && strings.Contains(string(body), "#EXT-X-PART:")
	})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	logs := srv.Log.String()
	if strings.Contains(logs, camPass) {
		t.Error("the log shows the camera's password")
	}
	if !strings.Contains(logs, "rtsp://viewer:xxxxx@"+relay.Addr+"/cam") {
		t.Errorf("the log does not name the camera (without its password)")
	}
}

package e2etest

import (
	"fmt"
	"os/exec"
	"testing"
)

// FFmpegOBS publishes a test pattern and a tone over RTMP in real time for
// seconds, with OBS's settings (x264 zerolatency, 1 s GOP, AAC 48 kHz
// stereo). The test's cleanup stops it and, if the test failed, logs the
// end of its output.
func FFmpegOBS(t testing.TB, rtmpURL string, seconds int) {
	t.Helper()
	out := &Buffer{}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high",
		"-pix_fmt", "yuv420p", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-f", "flv", rtmpURL)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting ffmpeg (make deps installs it): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ffmpeg output:\n%s", Tail(out.String(), 3000))
		}
	})
}

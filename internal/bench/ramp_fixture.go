package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
)

// LowRateFixtureArgs is the ffmpeg command line (after "ffmpeg") of the
// 1 Mbit/s 720p30 fixture: FixtureArgs with video at 900 kbit/s and AAC at
// 96 kbit/s. The ramp's first-to-last delay is bound by bytes per part
// times viewers, so a lower rate shows the server's own limit further out.
var LowRateFixtureArgs = []string{
	"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
	"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
	"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
	"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high", "-pix_fmt", "yuv420p",
	"-b:v", "900k", "-maxrate", "900k", "-bufsize", "1800k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
	"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-f", "flv",
}

// LowRateFixture returns the path of the 1 Mbit/s 720p30 H.264+AAC FLV,
// made with ffmpeg into the user cache directory on first use.
func LowRateFixture(ctx context.Context) (string, error) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return "", fmt.Errorf("the 1 Mbit/s fixture needs ffmpeg: %w", err)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "shopcast-bench")
	path := filepath.Join(dir, "h264_aac_720p30_1m.flv")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp.flv"
	cmd := exec.CommandContext(ctx, ffmpeg, append(slices.Clone(LowRateFixtureArgs), tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ffmpeg: %w: %s", err, out)
	}
	return path, os.Rename(tmp, path)
}

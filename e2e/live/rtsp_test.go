package live

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// TestE2ERTSPFFmpeg publishes with real ffmpeg over RTSP (TCP interleaved),
// as hardware encoders and GStreamer pipelines do, into the running server,
// and reads the LL-HLS output with gohlslib's Client: CODECS and the init
// segment's sample entries name the codecs ffmpeg sent, every frame is in
// the segments, and the PTS gohlslib reads advance a frame at a time.
func TestE2ERTSPFFmpeg(t *testing.T) {
	ffmpeg := needFFmpeg(t)
	for _, tc := range []struct {
		name    string
		video   []string
		codecs  []string // CODECS prefixes, video first
		entries []string // init segment sample entries
	}{
		{"H264+AAC", []string{"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high"},
			[]string{"avc1.64", "mp4a.40.2"}, []string{"avc1", "mp4a"}},
		{"H265+AAC", []string{"-c:v", "libx265", "-preset", "veryfast", "-tune", "zerolatency", "-x265-params", "log-level=error"},
			[]string{"hvc1.1.6.", "mp4a.40.2"}, []string{"hvc1", "mp4a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, func(c *server.Config) { c.GracePeriod, c.EndedLinger = time.Second, 10*time.Second })
			name := strings.ToLower(strings.ReplaceAll(tc.name, "+", "-"))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-re",
				"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
				"-t", "6"}
			args = append(args, tc.video...)
			args = append(args, "-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-b:v", "800k",
				"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
				"-f", "rtsp", "-rtsp_transport", "tcp", srv.RTSP+"/live/"+name)
			cmd := exec.CommandContext(ctx, ffmpeg, args...)
			out := &strings.Builder{}
			cmd.Stderr = out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			base := srv.HTTP + "/live/" + name + "/"
			e2etest.WaitUntil(t, 20*time.Second, "the stream to appear", func() bool {
				code, _, _ := e2etest.Get(t, base+"index.m3u8")
				return code == 200
			})

			_, mv, _ := e2etest.Get(t, base+"index.m3u8")
			cs := strings.Split(strings.Trim(strings.TrimPrefix(codecsAttr(string(mv)), "CODECS="), `"`), ",")
			if len(cs) != len(tc.codecs) {
				t.Errorf("CODECS %v, want %v", cs, tc.codecs)
			} else {
				for i := range cs {
					if !strings.HasPrefix(cs[i], tc.codecs[i]) {
						t.Errorf("CODECS %v, want %v", cs, tc.codecs)
					}
				}
			}
			if !strings.Contains(string(mv), "RESOLUTION=640x360") {
				t.Errorf("multivariant playlist lacks RESOLUTION=640x360:\n%s", mv)
			}
			_, media, _ := e2etest.Get(t, base+"stream.m3u8")
			for _, line := range strings.Split(string(media), "\n") {
				if !strings.HasPrefix(line, "#EXT-X-MAP:URI=") {
					continue
				}
				_, body, _ := e2etest.Get(t, base+strings.Trim(strings.TrimPrefix(line, "#EXT-X-MAP:URI="), `"`))
				mf, err := mp4.DecodeFile(bytes.NewReader(body))
				if err != nil || mf.Init == nil {
					t.Fatalf("mp4ff cannot decode the init segment: %v", err)
				}
				var entries []string
				for _, trak := range mf.Init.Moov.Traks {
					entries = append(entries, trak.Mdia.Minf.Stbl.Stsd.Children[0].Type())
				}
				if !slices.Equal(entries, tc.entries) {
					t.Errorf("init segment sample entries %v, want %v", entries, tc.entries)
				}
				break
			}

			checker := startStrictChecker(ctx, t, base)
			r := readHLSCodecs(t, base+"index.m3u8", identAU, 40*time.Second)
			waitFFmpeg(t, cmd, out)
			checker.wait()
			if !checker.ended {
				t.Error("the playlist never got EXT-X-ENDLIST")
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			// 6 s at 30 fps: every frame in the segments. Without B-frames
			// (zerolatency) the PTS gohlslib reads rise a frame at a time.
			if checker.videoSamples != 180 {
				t.Errorf("video samples in segments: %d, ffmpeg sent 180", checker.videoSamples)
			}
			if len(r.video) < 30 || len(r.audio) < 50 {
				t.Fatalf("gohlslib read %d video AUs and %d AAC frames", len(r.video), len(r.audio))
			}
			checkFrameSteps(t, r)
			t.Logf("%s over RTSP/TCP: %d video AUs, %d AAC frames read, %s", tc.name, len(r.video), len(r.audio), codecsAttr(string(mv)))
		})
	}
}

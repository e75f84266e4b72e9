package ingest_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
)

// TestRTSPServerFFmpeg: ffmpeg, the stand-in for hardware encoders and OBS's
// RTSP output, publishes 3s of H.264 + AAC in real time.
func TestRTSPServerFFmpeg(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg is not installed")
	}
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			log, _ := newLog(t)
			sink := newRecSink(nil)
			srv := &ingest.RTSPServer{Sink: sink, Logger: log}
			addr := startServer(t, srv, transport == "udp")

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
				"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
				"-f", "lavfi", "-i", "sine", "-t", "3",
				"-c:v", "libx264", "-tune", "zerolatency", "-g", "30", "-c:a", "aac",
				"-f", "rtsp", "-rtsp_transport", transport, "rtsp://"+addr+"/live/cam1")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			t.Logf("ffmpeg ran %v", time.Since(start))
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			sink.wait(t, "publication closed", func() bool { return len(sink.pubs) == 1 && sink.pubs[0].closed })

			t.Logf("closed after %v", time.Since(start))
			pub := sink.snapshot()[0]
			if len(pub.info.Tracks) != 2 {
				t.Fatalf("%d tracks", len(pub.info.Tracks))
			}
			v, ok := pub.info.Tracks[0].Codec.(*codecs.H264)
			if !ok || len(v.SPS) == 0 || len(v.PPS) == 0 {
				t.Fatalf("video track %#v", pub.info.Tracks[0].Codec)
			}
			a, ok := pub.info.Tracks[1].Codec.(*codecs.MPEG4Audio)
			if !ok || a.Config.SampleRate != 44100 {
				t.Fatalf("audio track %#v", pub.info.Tracks[1].Codec)
			}

			video := unitsOf[*codecs.H264](pub)
			audio := unitsOf[*codecs.MPEG4Audio](pub)
			// 3s at 30 fps, 3s of 1024-sample frames at 44.1 kHz, less what
			// precedes the first key frame.
			if len(video) < 85 || len(audio) < 120 {
				t.Fatalf("%d video and %d audio units, want about 90 and 129", len(video), len(audio))
			}
			if !h264.IsRandomAccess(video[0].AU) {
				t.Error("the first video unit is not a key frame")
			}
			keys := 0
			for i, u := range video {
				if h264.IsRandomAccess(u.AU) {
					keys++
					if !hasNALU(u.AU, h264.NALUTypeSPS) || !hasNALU(u.AU, h264.NALUTypePPS) {
						t.Errorf("key frame %d without SPS/PPS", i)
					}
				}
				if i == 0 {
					continue
				}
				if d := u.PTS - video[i-1].PTS; !near(d, time.Second/30, time.Millisecond) {
					t.Errorf("video unit %d: PTS step %v", i, d)
				}
			}
			if keys < 3 {
				t.Errorf("%d key frames, want one a second", keys)
			}
			for i := 1; i < len(audio); i++ {
				if d := audio[i].PTS - audio[i-1].PTS; !near(d, 1024*time.Second/44100, time.Microsecond) {
					t.Errorf("audio unit %d: PTS step %v", i, d)
				}
			}
			span := video[len(video)-1].PTS - video[0].PTS
			if span < 2800*time.Millisecond {
				t.Errorf("video spans %v", span)
			}
		})
	}
}

func hasNALU(au [][]byte, typ h264.NALUType) bool {
	for _, n := range au {
		if h264.NALUType(n[0]&0x1F) == typ {
			return true
		}
	}
	return false
}

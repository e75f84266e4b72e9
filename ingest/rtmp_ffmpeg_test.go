package ingest

import (
	"os/exec"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// TestRTMPFFmpeg publishes with ffmpeg, which sends the same command
// sequence as OBS (connect, releaseStream, FCPublish, createStream, publish,
// @setDataFrame onMetaData).
func TestRTMPFFmpeg(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	ts := startTestServer(t, nil)

	cmd := exec.CommandContext(testContext(t, 30*time.Second), ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine", "-t", "3",
		"-c:v", "libx264", "-tune", "zerolatency", "-g", "60", "-c:a", "aac",
		"-f", "flv", ts.url("/live/ffmpeg-key"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}

	p := ts.sink.waitPub(t, 0, 5*time.Second)
	ts.sink.waitClosed(t, p, 5*time.Second)
	ts.sink.snapshot(func() {
		if p.info.Name != "ffmpeg-key" || len(p.info.Tracks) != 2 {
			t.Fatalf("publication %+v", p.info)
		}
		h264, ok := p.info.Tracks[0].Codec.(*codecs.H264)
		if !ok || len(h264.SPS) == 0 || len(h264.PPS) == 0 {
			t.Fatalf("video codec %#v", p.info.Tracks[0].Codec)
		}
		aac, ok := p.info.Tracks[1].Codec.(*codecs.MPEG4Audio)
		if !ok || aac.Config.SampleRate != 44100 {
			t.Fatalf("audio codec %#v", p.info.Tracks[1].Codec)
		}

		count := map[int]int{}
		last := map[int]time.Duration{}
		for _, u := range p.units {
			if u.DTS < last[u.Track.ID] || u.PTS < u.DTS {
				t.Fatalf("track %d: DTS %v after %v, PTS %v", u.Track.ID, u.DTS, last[u.Track.ID], u.PTS)
			}
			last[u.Track.ID] = u.DTS
			count[u.Track.ID]++
		}
		// 3s of 30 fps video and 44.1 kHz AAC (1024 samples a frame).
		if count[1] != 90 || count[2] < 125 {
			t.Fatalf("%d video and %d audio units", count[1], count[2])
		}
		if len(p.data) != 0 {
			t.Fatalf("onMetaData handed over as data: %+v", p.data[0])
		}
	})
}

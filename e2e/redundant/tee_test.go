package redundant

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// TestTeeFeed pushes one ffmpeg encode (a keyframe every 2 s, the target
// duration) to two nodes through ffmpeg's tee muxer for 60 s, as OBS's
// multiple outputs do. Over the whole run, every segment and part listed on
// both nodes must have the same MSN, part index and URI, the same
// EXT-X-PROGRAM-DATE-TIME, the same video tfdt and sample count (mp4ff),
// and the same emsg boxes; the DATERANGE lines of two cues posted to both
// with an explicit "at" (an RFC 3339 time and a media time) must be
// identical; and the playlists must satisfy gohlslib's parser and
// hls-parser in strict mode.
func TestTeeFeed(t *testing.T) {
	ffmpeg := needFFmpeg(t)
	t.Parallel()
	const stream = "tee"
	nodes := [2]*e2etest.Server{startNode(t), startNode(t)}
	out := &e2etest.Buffer{}
	tee := fmt.Sprintf("[f=flv:onfail=ignore]%s/live/%s|[f=flv:onfail=ignore]%s/live/%s", nodes[0].RTMP, stream, nodes[1].RTMP, stream)
	cmd := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "64",
		"-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-b:v", "800k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
		"-flags", "+global_header", "-f", "tee", tee)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	bases := [2]string{}
	for i, n := range nodes {
		bases[i] = n.HTTP + "/live/" + stream + "/"
	}
	c := newComparer(t, bases[0], bases[1])
	ctx := context.Background()
	waitFor(t, 30*time.Second, "both nodes' playlists", func() bool {
		for _, b := range bases {
			if code, _, err := get(ctx, b+"stream.m3u8"); err != nil || code != 200 {
				return false
			}
		}
		return true
	})
	a, b := c.poll()
	if a.first-b.first > 1 || b.first-a.first > 1 {
		t.Fatalf("the nodes started at MSN %d and %d: not on the same timeline\n%s\n%s", a.first, b.first, a.body, b.body)
	}

	// Two cues posted to both nodes, as a shop backend driving redundant
	// origins does: the same id and an explicit "at" (a wall time 6 s
	// ahead, to the millisecond, then a media time 12 s after it).
	at := time.Now().Add(6 * time.Second).UTC().Truncate(time.Millisecond)
	wall := strconv.Quote(at.Format(time.RFC3339Nano))
	m0 := postCue(t, nodes[0].HTTP, stream, "tee-wall", wall, 4000)
	m1 := postCue(t, nodes[1].HTTP, stream, "tee-wall", wall, 4000)
	if m0 != m1 {
		t.Errorf("cue at %s placed at media time %d ms on node 1, %d ms on node 2", wall, m0, m1)
	}
	media := strconv.FormatInt(m0+12000, 10)
	for _, n := range nodes {
		postCue(t, n.HTTP, stream, "tee-media", media, 3000)
	}
	cueEnd := at.Add(12*time.Second + 3*time.Second)

	var compared bool
	for done := false; !done; {
		select {
		case err := <-exited:
			exited <- err
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			done = true
		case <-time.After(700 * time.Millisecond):
		}
		a, b := c.poll()
		if !compared && time.Now().After(cueEnd.Add(3*time.Second)) {
			compared = true
			for _, id := range []string{"tee-wall", "tee-media"} {
				la, lb := cueLines(a.body, id), cueLines(b.body, id)
				if len(la) == 0 || !slices.Equal(la, lb) {
					t.Errorf("DATERANGE of cue %s:\nnode 1: %q\nnode 2: %q", id, la, lb)
				}
			}
		}
	}
	if !compared {
		t.Error("the run ended before the cues' DATERANGE lines could be compared")
	}
	strictCheck(t, c.playlists)
	t.Logf("compared %d segments and %d parts on both nodes (largest video tfdt difference %d ticks of 90 kHz), %d emsg boxes, %d playlists read strict; gaps listed: %v",
		c.segs, c.parts, c.maxOff, c.emsgs, len(c.playlists), c.gaps)
	if c.segs < 25 || c.parts < 100 {
		t.Errorf("only %d segments and %d parts compared over the run", c.segs, c.parts)
	}
	if c.emsgs < 2 {
		t.Errorf("only %d emsg boxes compared: the cues' were not seen", c.emsgs)
	}
	if c.gaps != [2]int{} {
		t.Errorf("gaps listed (%v) though both nodes had the whole feed", c.gaps)
	}
}

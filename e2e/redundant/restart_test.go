package redundant

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// numberEpoch is the aligned timeline's media time 0 (packager).
var numberEpoch = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// TestRestartAndLoss plays an encoder feeding two nodes on one clock (a Go
// RTMP publisher per node, paced to a shared wall clock, the frames of one
// file looped). Node 2 is stopped mid-show and a fresh one started, to
// which the encoder reconnects, counting its timestamps from 0 again: once
// back, its numbers, program date-times and media times match node 1's.
// Then node 2's link loses every frame for a few seconds: its playlist
// lists what it lacks as EXT-X-GAP segments and GAP=YES parts with the
// numbering unbroken, the parsers accept it, shopcast_aligned_missing_total
// counts it, and once frames are back its numbers match node 1's again.
func TestRestartAndLoss(t *testing.T) {
	ffmpeg := needFFmpeg(t)
	t.Parallel()
	const stream = "redundant"
	// A 4 s fixture with a keyframe every 2 s, the target duration.
	fixture := filepath.Join(t.TempDir(), "gop2.flv")
	mk := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000", "-ac", "2", fixture)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("making the fixture: %v\n%s", err, out)
	}

	node1, node2 := startNode(t), startNode(t)
	enc := e2etest.NewEncoder(t, fixture, 2)
	// The keyframes arrive 0.7 s into their 2 s slot of the wall clock,
	// well clear of the slot boundary where two nodes could disagree.
	slot := time.Since(numberEpoch).Truncate(gop)
	enc.Start = numberEpoch.Add(slot + gop + 700*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	t.Cleanup(func() { cancel(); <-runDone })
	for i, n := range []*e2etest.Server{node1, node2} {
		if err := enc.Output(i).Connect(ctx, n.RTMP+"/live/"+stream); err != nil {
			t.Fatal(err)
		}
	}
	go func() { runDone <- enc.Run(ctx) }()

	base1 := node1.HTTP + "/live/" + stream + "/"
	base2 := node2.HTTP + "/live/" + stream + "/"
	ready := func(base string, segs int) func() bool {
		return func() bool {
			code, body, err := get(ctx, base+"stream.m3u8")
			return err == nil && code == 200 && strings.Count(string(body), "#EXTINF") >= segs
		}
	}
	waitFor(t, 30*time.Second, "3 segments on both nodes", func() bool { return ready(base1, 3)() && ready(base2, 3)() })
	c := newComparer(t, base1, base2)
	c.poll()
	if c.segs < 2 {
		t.Fatalf("%d segments on both nodes before the restart", c.segs)
	}

	// Node 2 goes down mid-show for over two segments.
	if err := node2.Stop(); err != nil {
		t.Fatal(err)
	}
	enc.Output(1).Disconnect()
	gone := readNode(t, base1).last
	waitFor(t, 30*time.Second, "node 1 to go on for two more segments", func() bool { return readNode(t, base1).last >= gone+2 })
	node2 = startNode(t)
	base2 = node2.HTTP + "/live/" + stream + "/"
	if err := enc.Output(1).Connect(ctx, node2.RTMP+"/live/"+stream); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "3 segments on the new node 2", ready(base2, 3))
	c2 := newComparer(t, base1, base2)
	a, b := c2.poll()
	if b.first <= gone {
		t.Errorf("the restarted node 2 starts at MSN %d, not after node 1's %d at the restart", b.first, gone)
	}
	if c2.segs < 2 || c2.parts < 4 {
		t.Fatalf("after the restart only %d segments and %d parts on both nodes\n%s\n%s", c2.segs, c2.parts, a.body, b.body)
	}
	restarted := c2.segs

	// Node 2's link loses every frame for about two segments.
	enc.Output(1).Lose(true)
	c2.lossy = true
	lost := readNode(t, base1).last
	waitFor(t, 30*time.Second, "node 1 to go on for two more segments", func() bool {
		c2.poll()
		return readNode(t, base1).last >= lost+2
	})
	enc.Output(1).Lose(false)
	back := readNode(t, base1).last
	// From the first segment node 2 can have whole again, it must match.
	c3 := newComparer(t, base1, base2)
	c3.from = back + 1
	waitFor(t, 30*time.Second, "node 2 to publish 2 segments after the loss", func() bool {
		c2.poll()
		_, b := c3.poll()
		n := 0
		for msn, sv := range b.segs {
			if msn > back && sv.complete && !sv.gap {
				n++
			}
		}
		return n >= 2
	})
	_, b = c3.poll()
	if !strings.Contains(string(b.body), "#EXT-X-GAP") && !strings.Contains(string(b.body), "GAP=YES") {
		t.Errorf("node 2's playlist lists no gap after losing frames:\n%s", b.body)
	}
	m := missing(t, node2, stream)
	if m["gap_segment"]+m["gap_part"] == 0 {
		t.Errorf("shopcast_aligned_missing_total of node 2: %v, want the gap counted", m)
	}
	if c3.segs < 2 {
		t.Errorf("%d segments compared after the loss", c3.segs)
	}
	strictCheck(t, append(append(c.playlists, c2.playlists...), append(c3.playlists, b.body)...))
	t.Logf("before the restart %d segments, %d parts compared; after it %d segments, %d parts (%d before the loss); after the loss %d segments, %d parts; largest tfdt difference %d, %d, %d ticks; gap tags seen on node 2 over the polls %d; its counters %v",
		c.segs, c.parts, c2.segs, c2.parts, restarted, c3.segs, c3.parts, c.maxOff, c2.maxOff, c3.maxOff, c2.gaps[1]+c3.gaps[1], m)
}

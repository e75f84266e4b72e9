package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// TestGStreamerPlays plays a live stream in GStreamer the ways docs/players.md
// recommends, and checks that audio and video are rendered in real time:
// playbin3 (hlsdemux2) on the fMP4 LL-HLS playlist, and the legacy playbin
// (hlsdemux) on the MPEG-TS playlist. It joins once the playlist window
// starts well after media time 0, where the legacy hlsdemux stalls on fMP4:
// it takes the first listed segment as time 0 and ignores tfdt, so its sinks
// wait for as long as that segment's media time. The last case checks that
// it still does, as the page says.
func TestGStreamerPlays(t *testing.T) {
	gst := requireTool(t, "gst-launch-1.0", "gstreamer1.0-tools")
	requireGstElements(t, "playbin3", "hlsdemux2", "hlsdemux", "qtdemux", "tsdemux", "avdec_h264", "avdec_aac")
	requireTool(t, "ffmpeg", "ffmpeg")

	cfg := e2etest.Config(t)
	cfg.WindowSegments = 6 // the least: the window slides off media time 0 sooner
	srv := e2etest.Start(t, cfg)
	e2etest.FFmpegOBS(t, srv.RTMP+"/live/gst", 120)
	base := srv.HTTP + "/live/gst/"

	// The legacy case watches for stall seconds; the window's first segment
	// must start later than that, with a margin for gst-launch's start.
	const stall = 4 * time.Second
	const windowAfter = stall + 4*time.Second
	var windowStart time.Duration
	e2etest.WaitUntil(t, 60*time.Second, fmt.Sprintf("the playlist window to start after media time %v", windowAfter), func() bool {
		body, err := get(context.Background(), base+"stream.m3u8")
		if err != nil {
			return false
		}
		seg, ok := firstSegment(body)
		if !ok {
			return false
		}
		windowStart, err = videoDecodeTime(base + seg)
		if err != nil {
			t.Fatalf("%s: %v", seg, err)
		}
		return windowStart >= windowAfter
	})
	t.Logf("joining with the playlist's first segment at media time %v", windowStart)

	const want = 3 * time.Second
	for _, tc := range []struct {
		name, element, playlist string
		plays                   bool
	}{
		{"playbin3 fMP4", "playbin3", "index.m3u8", true},
		{"playbin TS", "playbin", "index_ts.m3u8", true},
		{"legacy playbin fMP4 stalls", "playbin", "index.m3u8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.plays {
				got, err := gstRender(gst, tc.element, base+tc.playlist, want, 30*time.Second)
				if err != nil {
					t.Fatalf("%s %s: %v", tc.element, tc.playlist, err)
				}
				t.Logf("%s %s: %s", tc.element, tc.playlist, got)
				return
			}
			// Nothing may be rendered for stall: it would take the
			// window's start. Rendering means docs/players.md is out of
			// date (a GStreamer that maps tfdt in hlsdemux).
			got, err := gstRender(gst, tc.element, base+tc.playlist, time.Hour, stall)
			if err == nil || !strings.Contains(got, "vs rendered nothing; as rendered nothing") {
				t.Fatalf("%s %s rendered within %v, with the playlist window at media time %v: %s; update docs/players.md",
					tc.element, tc.playlist, stall, windowStart, got)
			}
			t.Logf("%s %s: %s in %v, as docs/players.md says", tc.element, tc.playlist, got, stall)
		})
	}
}

// requireGstElements checks that GStreamer has the elements: missing, it
// skips the test, or fails it under CI=true.
func requireGstElements(t *testing.T, names ...string) {
	t.Helper()
	inspect := requireTool(t, "gst-inspect-1.0", "gstreamer1.0-tools")
	for _, name := range names {
		if err := exec.Command(inspect, "--exists", name).Run(); err != nil {
			msg := fmt.Sprintf("GStreamer element %s is missing (make deps as root installs the GStreamer packages): %v", name, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// firstSegment returns the URI of a media playlist's first segment.
func firstSegment(playlist string) (uri string, ok bool) {
	for line := range strings.Lines(playlist) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line, true
		}
	}
	return "", false
}

// videoDecodeTime reads a segment's first tfdt of track 1 (the video) with
// mp4ff, in the track's timescale of 90 kHz.
func videoDecodeTime(u string) (time.Duration, error) {
	body, err := get(context.Background(), u)
	if err != nil {
		return 0, err
	}
	f, err := mp4.DecodeFile(bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			for _, traf := range frag.Moof.Trafs {
				if traf.Tfhd.TrackID == 1 && traf.Tfdt != nil {
					return time.Duration(traf.Tfdt.BaseMediaDecodeTime()) * time.Second / 90000, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no tfdt for track 1")
}

// sinkChain matches what a fakesink with silent=false reports (gst-launch
// -v) for each buffer it renders: its name and the buffer's PTS.
var sinkChain = regexp.MustCompile(`chain +\*+ \((vs|as):sink\) \(\d+ bytes, dts: [^,]*, pts: (\d+):(\d\d):(\d\d)\.(\d{9})`)

// gstRender plays uri with a playbin element into synchronised fakesinks
// (vs for video, as for audio) until each has rendered want of media by
// its timestamps, which with sync=true takes that long in real time. It
// fails when gst-launch exits first or the deadline passes. Either way it
// says what each sink rendered.
func gstRender(gst, element, uri string, want, deadline time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, gst, "-v", element, "uri="+uri,
		"video-sink=fakesink name=vs sync=true silent=false",
		"audio-sink=fakesink name=as sync=true silent=false")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	stderr := &e2etest.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()

	type span struct{ first, last time.Duration }
	var (
		mu    sync.Mutex
		spans = map[string]*span{}
		lines []string // the last ones, for the error
	)
	done := make(chan struct{})
	enough := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if lines = append(lines, line); len(lines) > 20 {
				lines = lines[1:]
			}
			if m := sinkChain.FindStringSubmatch(line); m != nil {
				h, _ := strconv.Atoi(m[2])
				mi, _ := strconv.Atoi(m[3])
				s, _ := strconv.Atoi(m[4])
				ns, _ := strconv.Atoi(m[5])
				pts := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second + time.Duration(ns)
				sp := spans[m[1]]
				if sp == nil {
					sp = &span{first: pts}
					spans[m[1]] = sp
				}
				sp.first, sp.last = min(sp.first, pts), max(sp.last, pts)
				if !signalled && len(spans) == 2 && spans["vs"].last-spans["vs"].first >= want && spans["as"].last-spans["as"].first >= want {
					signalled = true
					close(enough)
				}
			}
			mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
	}()

	describe := func() string {
		mu.Lock()
		defer mu.Unlock()
		var b strings.Builder
		for _, name := range []string{"vs", "as"} {
			if sp := spans[name]; sp != nil {
				fmt.Fprintf(&b, "%s rendered PTS %v to %v; ", name, sp.first, sp.last)
			} else {
				fmt.Fprintf(&b, "%s rendered nothing; ", name)
			}
		}
		return strings.TrimSuffix(b.String(), "; ")
	}
	select {
	case <-enough:
		return describe(), nil
	case <-done:
		got := describe()
		return got, fmt.Errorf("gst-launch-1.0 ended before %v of media was rendered (%s)\nstdout:\n%s\nstderr:\n%s",
			want, got, strings.Join(lines, "\n"), e2etest.Tail(stderr.String(), 3000))
	case <-ctx.Done():
		got := describe()
		mu.Lock()
		last := strings.Join(lines, "\n")
		mu.Unlock()
		return got, fmt.Errorf("not %v of media rendered within %v (%s)\nstdout:\n%s\nstderr:\n%s",
			want, deadline, got, last, e2etest.Tail(stderr.String(), 3000))
	}
}

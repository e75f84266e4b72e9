package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/origin"
	"github.com/shopcast/shopcast/packager"
)

// liveStack is shopcast's pipeline on loopback ports: the RTSP and RTMP
// ingest, the real packager and the origin, as cmd/shopcast wires them.
type liveStack struct {
	rtsp string // RTSP address
	rtmp string // RTMP address
	http string // origin address
	sink *recSink
}

// startLive starts a liveStack; udp enables the RTSP server's UDP transport.
func startLive(t *testing.T, udp bool) *liveStack {
	t.Helper()
	log, _ := newLog(t)
	pk := packager.New(packager.Config{GracePeriod: 500 * time.Millisecond}, log)
	t.Cleanup(pk.Close) // after the servers: they are cleaned up first
	web := &origin.Server{Address: "127.0.0.1:0", Source: pk}
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = web.Shutdown(context.Background()) })
	sink := newRecSink(pk)
	// A publisher killed without a TEARDOWN (UDP) is gone after 3 s.
	rtsp := &ingest.RTSPServer{Sink: sink, Logger: log, ReadTimeout: 3 * time.Second}
	rtspAddr := startServer(t, rtsp, udp)
	rtmp := &ingest.RTMPServer{Address: "127.0.0.1:0", Sink: sink, Logger: log}
	if err := rtmp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rtmp.Close)
	return &liveStack{rtsp: rtspAddr, rtmp: rtmp.Addr().String(), http: web.Addr().String(), sink: sink}
}

// playlistURL is the fMP4 LL-HLS media playlist of stream name.
func (s *liveStack) playlistURL(name string) string {
	return "http://" + s.http + "/live/" + name + "/stream.m3u8"
}

// needPeer returns the path of a test peer program. A missing one skips the
// test, unless CI is set: there make deps installs it, and its absence is a
// failure.
func needPeer(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; make deps installs it", name)
	}
	t.Skipf("%s is not installed (make deps installs it; with CI set this test fails instead)", name)
	return ""
}

// gstPublishArgs is the pipeline of TOOLING.md: a camera-like encoder that
// publishes H.264 and AAC over RTSP with rtspclientsink's default
// payloaders (MP4A-LATM for AAC), for about seconds of media.
func gstPublishArgs(url, transport string, seconds int) []string {
	return strings.Fields(fmt.Sprintf("-q -e videotestsrc is-live=true num-buffers=%d "+
		"! video/x-raw,width=640,height=360,framerate=30/1 "+
		"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1000 ! h264parse ! s.sink_0 "+
		"audiotestsrc is-live=true num-buffers=%d ! audioconvert ! avenc_aac ! aacparse ! s.sink_1 "+
		"rtspclientsink name=s location=%s protocols=%s",
		seconds*30, seconds*44100/1024, url, transport))
}

// runGStreamer publishes seconds of media with GStreamer (gstPublishArgs)
// and waits for it to end. gst-launch-1.0 does not always end after its
// media: over UDP rtspclientsink sends no TEARDOWN, and when the server drops
// the silent session (ReadTimeout) it reconnects and waits; over TCP it was
// seen to stay too on a loaded machine. Once it is late, it gets an
// interrupt, then is killed: it has sent its media by then.
func runGStreamer(ctx context.Context, t *testing.T, gst, url, transport string, seconds int) error {
	var out strings.Builder
	cmd := exec.CommandContext(ctx, gst, gstPublishArgs(url, transport, seconds)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// GStreamer takes a second or two to start, then sends its media in
	// real time.
	late := time.NewTimer(time.Duration(seconds)*time.Second + 8*time.Second)
	defer late.Stop()
	select {
	case err := <-done:
		if err != nil {
			return &peerError{err: err, out: out.String()}
		}
		return nil
	case <-late.C:
	}
	t.Logf("gst-launch-1.0 still running %v after its media: interrupted", 8*time.Second)
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// ffmpegArgs is the OBS stand-in of TOOLING.md, publishing seconds of
// media to url in format (rtsp with transport, or flv).
func ffmpegArgs(url, format, transport string, seconds int) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-f", format}
	if format == "rtsp" {
		args = append(args, "-rtsp_transport", transport)
	}
	return append(args, url)
}

// edgeStats is how far ahead of the wall clock the live edge's program
// date-time was in the playlists a viewer got.
type edgeStats struct {
	n        int           // playlists read
	max, min time.Duration // edge minus the time the playlist arrived
	offsets  []time.Duration
	worst    string // the playlist of max
	ended    bool   // the last playlist had EXT-X-ENDLIST
}

// median is the median offset.
func (st *edgeStats) median() time.Duration {
	if len(st.offsets) == 0 {
		return 0
	}
	o := slices.Clone(st.offsets)
	slices.Sort(o)
	return o[len(o)/2]
}

// watchEdge reads a media playlist as an LL-HLS player does, with a
// blocking reload for each next part, from its first version until the
// stream ends or ctx is done. For each playlist it compares the live edge
// (the last segment's EXT-X-PROGRAM-DATE-TIME plus what the playlist lists
// of it) with the wall clock at the moment the playlist arrived.
func watchEdge(ctx context.Context, url string) (edgeStats, error) {
	st := edgeStats{max: -time.Hour, min: time.Hour}
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(u string) (string, int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return "", 0, err
		}
		res, err := c.Do(req)
		if err != nil {
			return "", 0, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), res.StatusCode, err
	}
	// The playlist appears with the publication's first part.
	next := url
	first := true
	for {
		body, code, err := get(next)
		arrived := time.Now()
		if ctx.Err() != nil {
			return st, nil
		}
		if err != nil {
			return st, err
		}
		if code == http.StatusNotFound && first {
			select {
			case <-ctx.Done():
				return st, nil
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		if code == http.StatusServiceUnavailable && !first {
			// A blocking reload that no part answered within three
			// target durations (RFC 8216bis 6.2.5.2): the publisher
			// stopped.
			return st, nil
		}
		if code != http.StatusOK {
			return st, fmt.Errorf("%s: %d", next, code)
		}
		first = false
		e, err := parseEdge(body)
		if err != nil {
			return st, err
		}
		if e.ended {
			// Its edge stays while the clock goes on: not a live edge.
			st.ended = true
			return st, nil
		}
		d := e.edge.Sub(arrived)
		st.n++
		st.offsets = append(st.offsets, d)
		st.min = min(st.min, d)
		if d > st.max {
			st.max, st.worst = d, body
		}
		next = fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", url, e.msn, e.part)
	}
}

// playlistEdge is what parseEdge reads of a media playlist.
type playlistEdge struct {
	edge      time.Time // the live edge's program date-time
	msn, part int64     // the next part, for a blocking reload
	ended     bool
}

// parseEdge reads the live edge of a media playlist: the last segment's
// program date-time plus its duration, or, for the open segment, the
// duration of its parts.
func parseEdge(body string) (playlistEdge, error) {
	var e playlistEdge
	var seq, segs int64 = 0, -1
	var pdt time.Time
	var parts, extinf float64
	var nparts int64
	complete := false
	for _, l := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			v, err := strconv.ParseInt(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
			if err != nil {
				return e, err
			}
			seq = v
		case strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"):
			v, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"))
			if err != nil {
				return e, err
			}
			pdt, segs, parts, nparts, complete = v, segs+1, 0, 0, false
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			attr, _, _ := strings.Cut(strings.TrimPrefix(l, "#EXT-X-PART:DURATION="), ",")
			v, err := strconv.ParseFloat(attr, 64)
			if err != nil {
				return e, fmt.Errorf("%q: %w", l, err)
			}
			parts += v
			nparts++
		case strings.HasPrefix(l, "#EXTINF:"):
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(l, "#EXTINF:"), ","), 64)
			if err != nil {
				return e, err
			}
			extinf, complete = v, true
		case l == "#EXT-X-ENDLIST":
			e.ended = true
		}
	}
	if segs < 0 {
		return e, fmt.Errorf("no EXT-X-PROGRAM-DATE-TIME in\n%s", body)
	}
	dur := parts
	e.msn, e.part = seq+segs, nparts
	if complete {
		dur = extinf
		e.msn, e.part = e.msn+1, 0
	}
	e.edge = pdt.Add(time.Duration(dur * float64(time.Second)))
	return e, nil
}

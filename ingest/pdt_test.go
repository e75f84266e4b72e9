package ingest_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/testpub"
)

// pdtRun is how long each publisher of TestPDTNeverAhead publishes. The
// issue asks 60 s; the start, where a publisher's backlog arrives, and the
// first segments are where a program date-time went ahead, and 15 s covers
// seven 2 s segments after them while keeping the test under half a minute.
const pdtRun = 15

// pdtTolerance is how far ahead of the wall clock a live edge may be: the
// time between the arrival of a playlist and its rendering, and the
// millisecond rounding of EXT-X-PROGRAM-DATE-TIME.
const pdtTolerance = 50 * time.Millisecond

// pdtFixture is 4 s of H.264 with B-frames and AAC, as FLV.
const pdtFixture = "../testdata/h264_aac.flv"

// TestPDTNeverAhead: for every kind of publisher, the program date-time of
// the live edge a viewer reads, with blocking reloads from the very first
// playlist of the stream, is never later than the wall clock when the
// playlist arrives. GStreamer's rtspclientsink starts with a backlog of 2 s
// of media sent at once (gortsplib answers each of its SETUPs a second late);
// dated by the arrival of its first key frame, its stream ran about 2 s
// ahead.
func TestPDTNeverAhead(t *testing.T) {
	cases := []struct {
		name string
		peer string
		// publish runs the publisher until it is done.
		publish func(ctx context.Context, t *testing.T, peer string, s *liveStack) error
		udp     bool
	}{
		{"gstreamer_rtsp_tcp", "gst-launch-1.0", func(ctx context.Context, t *testing.T, peer string, s *liveStack) error {
			return runGStreamer(ctx, t, peer, "rtsp://"+s.rtsp+"/live/shop", "tcp", pdtRun)
		}, false},
		{"gstreamer_rtsp_udp", "gst-launch-1.0", func(ctx context.Context, t *testing.T, peer string, s *liveStack) error {
			return runGStreamer(ctx, t, peer, "rtsp://"+s.rtsp+"/live/shop", "udp", pdtRun)
		}, true},
		{"ffmpeg_rtsp_tcp", "ffmpeg", func(ctx context.Context, t *testing.T, peer string, s *liveStack) error {
			return runPeer(ctx, peer, ffmpegArgs("rtsp://"+s.rtsp+"/live/shop", "rtsp", "tcp", pdtRun)...)
		}, false},
		{"ffmpeg_rtmp", "ffmpeg", func(ctx context.Context, t *testing.T, peer string, s *liveStack) error {
			return runPeer(ctx, peer, ffmpegArgs("rtmp://"+s.rtmp+"/live/shop", "flv", "", pdtRun)...)
		}, false},
		{"testpub_rtmp", "", func(ctx context.Context, _ *testing.T, _ string, s *liveStack) error {
			// The 4 s fixture, paced, looped to the run's length.
			return testpub.Publish(ctx, "rtmp://"+s.rtmp+"/live/shop", pdtFixture, testpub.Options{Loops: (pdtRun + 3) / 4})
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			peer := ""
			if tc.peer != "" {
				peer = needPeer(t, tc.peer)
			}
			s := startLive(t, tc.udp)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(pdtRun+30)*time.Second)
			defer cancel()
			type result struct {
				st  edgeStats
				err error
			}
			// The watch ends with the stream (EXT-X-ENDLIST), or shortly
			// after the publisher is done.
			watchCtx, stopWatch := context.WithCancel(ctx)
			defer stopWatch()
			watched := make(chan result, 1)
			go func() {
				st, err := watchEdge(watchCtx, s.playlistURL("shop"))
				watched <- result{st, err}
			}()
			start := time.Now()
			if err := tc.publish(ctx, t, peer, s); err != nil {
				t.Fatalf("publisher: %v", err)
			}
			t.Logf("published for %v", time.Since(start).Round(time.Millisecond))
			var r result
			select {
			case r = <-watched:
			case <-time.After(3 * time.Second):
				stopWatch()
				r = <-watched
			}
			if r.err != nil {
				t.Fatalf("reading the playlist: %v", r.err)
			}
			t.Logf("%d playlists: live edge from %v to %v ahead of the wall clock, median %v",
				r.st.n, r.st.min, r.st.max, r.st.median())
			// A part every 333 ms at least, over most of the run.
			if r.st.n < pdtRun*2 {
				t.Errorf("only %d playlists read", r.st.n)
			}
			if r.st.max > pdtTolerance {
				t.Errorf("live edge %v ahead of the wall clock in:\n%s", r.st.max, r.st.worst)
			}
			// Mostly behind by more than a part would be a date that does
			// not follow arrival. (The last playlists, after the publisher
			// stopped sending, may be far behind.)
			if m := r.st.median(); m < -400*time.Millisecond {
				t.Errorf("live edge %v behind the wall clock in the median playlist", -m)
			}
		})
	}
}

// runPeer runs a test peer program to its end.
func runPeer(ctx context.Context, path string, args ...string) error {
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return &peerError{err: err, out: string(out)}
	}
	return nil
}

type peerError struct {
	err error
	out string
}

func (e *peerError) Error() string { return e.err.Error() + "\n" + e.out }
func (e *peerError) Unwrap() error { return e.err }

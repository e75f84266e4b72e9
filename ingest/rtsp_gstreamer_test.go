package ingest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/internal/hlsread"
)

// gstSeconds is how long GStreamer publishes in TestRTSPServerGStreamer.
const gstSeconds = 6

// TestRTSPServerGStreamer: GStreamer, as a camera or encoder pipeline with
// rtspclientsink's default payloaders (AAC as MP4A-LATM, RFC 6416),
// publishes H.264 and AAC over TCP and over UDP, and gohlslib's Client reads
// from the LL-HLS playlist every access unit the encoder made, one frame
// after the other.
func TestRTSPServerGStreamer(t *testing.T) {
	gst := needPeer(t, "gst-launch-1.0")
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			s := startLive(t, transport == "udp")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := runGStreamer(ctx, t, gst, "rtsp://"+s.rtsp+"/live/cam", transport, gstSeconds); err != nil {
				t.Fatalf("gst-launch-1.0: %v", err)
			}
			s.sink.wait(t, "publication closed", func() bool { return len(s.sink.pubs) == 1 && s.sink.pubs[0].closed })
			pub := s.sink.snapshot()[0]
			if len(pub.info.Tracks) != 2 {
				t.Fatalf("%d tracks", len(pub.info.Tracks))
			}
			var rate int
			for _, tr := range pub.info.Tracks {
				if a, ok := tr.Codec.(*codecs.MPEG4Audio); ok {
					rate = a.Config.SampleRate
				}
			}
			if rate != 44100 {
				t.Fatalf("tracks %v: no AAC at 44.1 kHz", pub.info.Tracks)
			}
			video := unitsOf[*codecs.H264](pub)
			audio := unitsOf[*codecs.MPEG4Audio](pub)
			// num-buffers: gstSeconds of 30 fps video, every frame encoded
			// and sent from the first, a key frame.
			if len(video) != gstSeconds*30 || !h264.IsRandomAccess(video[0].AU) {
				t.Fatalf("%d video units, want %d from a key frame", len(video), gstSeconds*30)
			}
			// The packager starts on the first key frame: audio before it
			// is not in the playlist. How much audio comes before it
			// depends on when x264enc's first frame is out (a loaded
			// machine delays it by a few hundred ms).
			wantAudio := 0
			for _, u := range audio {
				if u.DTS >= video[0].DTS {
					wantAudio++
				}
			}
			if wantAudio < gstSeconds*44100/1024*8/10 {
				t.Fatalf("%d audio units after the first key frame, want about %d", wantAudio, gstSeconds*44100/1024)
			}

			got := readHLS(t, s.playlistURL("cam"))
			if len(got.video) != len(video) {
				t.Errorf("client read %d video access units, %d published", len(got.video), len(video))
			}
			if len(got.audio) != wantAudio {
				t.Errorf("client read %d AAC frames, %d published after the first key frame", len(got.audio), wantAudio)
			}
			// One frame after the other, on the publisher's clock.
			for i := 1; i < len(got.video); i++ {
				if d := got.video[i] - got.video[i-1]; d != int64(got.videoRate/30) {
					t.Errorf("video access unit %d: %d ticks after the previous one", i, d)
				}
			}
			for i := 1; i < len(got.audio); i++ {
				if d := got.audio[i] - got.audio[i-1]; d != 1024 {
					t.Errorf("AAC frame %d: %d ticks after the previous one", i, d)
				}
			}
		})
	}
}

// hlsRead is what gohlslib's Client read: the PTS of every video access unit
// and of every AAC frame, in their tracks' clock rates.
type hlsRead struct {
	video, audio         []int64
	videoRate, audioRate int
}

// readHLS reads an ended LL-HLS media playlist with gohlslib's Client, from
// its first segment to its end.
func readHLS(t *testing.T, url string) hlsRead {
	t.Helper()
	var mu sync.Mutex
	var r hlsRead
	c := &gohlslib.Client{
		URI: url,
	}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			switch tr.Codec.(type) {
			case *hlscodecs.H264:
				r.videoRate = tr.ClockRate
				c.OnDataH26x(tr, func(pts, _ int64, _ [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					r.video = append(r.video, pts)
				})
			case *hlscodecs.MPEG4Audio:
				r.audioRate = tr.ClockRate
				c.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					for i := range aus {
						r.audio = append(r.audio, pts+int64(i)*1024)
					}
				})
			}
		}
		return nil
	}
	// The playlist ends (EXT-X-ENDLIST) after the packager's grace period:
	// then the client reads it from its first segment.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		st, err := watchEdge(ctx, url)
		if err != nil || ctx.Err() != nil {
			t.Fatalf("%s never ended: %v", url, err)
		}
		if st.ended {
			break
		}
	}
	if err := hlsread.ToEnd(c, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return r
}

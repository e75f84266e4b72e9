package packager_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/hlsread"
	"github.com/shopcast/shopcast/origin"
	"github.com/shopcast/shopcast/packager"
)

var (
	clientSPS = []byte{
		0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
		0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16,
		0x2d, 0x96,
	}
	clientPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
)

// TestTSClient publishes 4 s of H.264 (SPS and PPS out of band only, as
// RTMP publishers send them) and AAC, and reads stream_ts.m3u8 from a real
// origin.Server with gohlslib's Client, which reads MPEG-TS with an
// independent demuxer: it gets every access unit's slice and every AAC
// frame, at the times they were sent.
func TestTSClient(t *testing.T) {
	m := packager.New(packager.Config{TargetDuration: time.Second, GracePeriod: 100 * time.Millisecond}, nil)
	defer m.Close()
	srv := &origin.Server{Address: "127.0.0.1:0", Source: m}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	base := "http://" + srv.Addr().String() + "/live/shop/"

	video := &ingest.Track{ID: 1, Codec: &mp4codecs.H264{SPS: clientSPS, PPS: clientPPS}}
	audio := &ingest.Track{ID: 2, Codec: &mp4codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2}}}
	pub, err := m.Publish(ingest.PublishInfo{Name: "shop", Proto: "rtmp", Remote: "127.0.0.1:1", Tracks: []*ingest.Track{video, audio}})
	if err != nil {
		t.Fatal(err)
	}
	const frames, fps, gop = 4*30 + 1, 30, 30
	var slices [][]byte
	var aacs [][]byte
	aNext := time.Duration(0)
	for i := range frames {
		at := time.Duration(i) * time.Second / fps
		for aNext <= at {
			f := bytes.Repeat([]byte{byte(len(aacs))}, 100+len(aacs)%50)
			aacs = append(aacs, f)
			if err := pub.WriteUnit(&ingest.Unit{Track: audio, PTS: aNext, DTS: aNext, Frame: f}); err != nil {
				t.Fatal(err)
			}
			aNext += 1024 * time.Second / 48000
		}
		nalu := make([]byte, 50+i%7)
		if i%gop == 0 {
			nalu[0] = byte(h264.NALUTypeIDR) | 0x60
		} else {
			nalu[0] = byte(h264.NALUTypeNonIDR) | 0x40
		}
		nalu[1], nalu[2] = byte(i>>8), byte(i)
		slices = append(slices, nalu)
		if err := pub.WriteUnit(&ingest.Unit{Track: video, PTS: at, DTS: at, AU: [][]byte{nalu}}); err != nil {
			t.Fatal(err)
		}
	}
	pub.Close()

	// The stream ends after its grace period: the TS playlist gets
	// EXT-X-ENDLIST and the client reads it from its first segment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "stream_ts.m3u8")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), "#EXT-X-ENDLIST") {
				if resp.Header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
					t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("stream_ts.m3u8 never ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(base + "seg0.ts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp2t" {
		t.Fatalf("seg0.ts: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	var mu sync.Mutex
	var gotSlices [][]byte
	var gotAAC [][]byte
	var videoPTS, audioPTS []int64
	c := &gohlslib.Client{
		URI: base + "stream_ts.m3u8",
	}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			switch tr.Codec.(type) {
			case *codecs.H264:
				c.OnDataH26x(tr, func(pts, _ int64, au [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					videoPTS = append(videoPTS, pts)
					for _, n := range au {
						if typ := h264.NALUType(n[0] & 0x1f); typ == h264.NALUTypeIDR || typ == h264.NALUTypeNonIDR {
							gotSlices = append(gotSlices, n)
						}
					}
				})
			case *codecs.MPEG4Audio:
				c.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					for i, au := range aus {
						audioPTS = append(audioPTS, pts+int64(i)*1920) // 90 kHz: 1024 samples at 48 kHz
						gotAAC = append(gotAAC, au)
					}
				})
			}
		}
		return nil
	}
	if err := hlsread.ToEnd(c, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(gotSlices) != len(slices) {
		t.Fatalf("client got %d video access units, %d sent", len(gotSlices), len(slices))
	}
	for i := range slices {
		if !bytes.Equal(gotSlices[i], slices[i]) {
			t.Fatalf("access unit %d differs", i)
		}
		// 90 kHz: frame i at i * 3000 ticks from the first.
		if d := videoPTS[i] - videoPTS[0]; d != int64(i)*3000 {
			t.Fatalf("access unit %d at %d ticks, want %d", i, d, i*3000)
		}
	}
	// The packager drops the audio written before the first keyframe (the
	// frame at 0 was written just before it) and may hold back none after
	// the last video frame: the publication flushes on Close.
	if len(gotAAC) != len(aacs)-1 {
		t.Fatalf("client got %d AAC frames, %d sent", len(gotAAC), len(aacs))
	}
	// Audio and video share the clock: the first AAC frame kept was sent
	// 1024 samples (1920 ticks) after the first video frame.
	if d := audioPTS[0] - videoPTS[0]; d != 1920 {
		t.Fatalf("first AAC frame %d ticks after the first video frame, want 1920", d)
	}
	for i := range gotAAC {
		if !bytes.Equal(gotAAC[i], aacs[i+1]) {
			t.Fatalf("AAC frame %d differs", i)
		}
		if d := audioPTS[i] - audioPTS[0]; d != int64(i)*1920 {
			t.Fatalf("AAC frame %d at %d, want %d", i, d, i*1920)
		}
	}
}

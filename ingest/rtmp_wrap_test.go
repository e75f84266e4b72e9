package ingest_test

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/packager"
)

// unitTap records every unit's track and timestamps on its way to the next
// Sink.
type unitTap struct {
	next ingest.Sink
	mu   sync.Mutex
	got  map[int][]time.Duration // track ID -> DTS, in arrival order
	pts  map[int][]time.Duration
}

func (s *unitTap) Publish(info ingest.PublishInfo) (ingest.Publication, error) {
	p, err := s.next.Publish(info)
	if err != nil {
		return nil, err
	}
	return &tapPub{Publication: p, s: s}, nil
}

type tapPub struct {
	ingest.Publication
	s *unitTap
}

func (p *tapPub) WriteUnit(u *ingest.Unit) error {
	p.s.mu.Lock()
	p.s.got[u.Track.ID] = append(p.s.got[u.Track.ID], u.DTS)
	p.s.pts[u.Track.ID] = append(p.s.pts[u.Track.ID], u.PTS)
	p.s.mu.Unlock()
	return p.Publication.WriteUnit(u)
}

// gop2Fixture makes 16s of H.264 (a key frame every 2s) + AAC in FLV, sent
// once; or, without ffmpeg, it falls back to the repository's 4s fixture (a
// key frame every second), sent four times. loops is how many times.
func gop2Fixture(t *testing.T) (path string, loops int) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Log("ffmpeg not installed: using the 1s-GOP fixture")
		return "../testdata/h264_aac.flv", 4
	}
	out := filepath.Join(t.TempDir(), "gop2.flv")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "16",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
		"-c:a", "aac", "-ar", "48000", "-f", "flv", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out, 1
}

var extinf = regexp.MustCompile(`#EXTINF:([0-9.]+),`)

// TestRTMPTimestampWrap: a publisher whose RTMP timestamps start 6s before
// 2^32 ms, so that they wrap around (RTMP specification 5.3.1.3) 6s in,
// publishes 16s of 2s GOPs through the packager: the units' timestamps go
// on growing across the wrap, and every segment lasts one GOP, within
// TARGETDURATION.
func TestRTMPTimestampWrap(t *testing.T) {
	flv, loops := gop2Fixture(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pk := packager.New(packager.Config{TargetDuration: 2 * time.Second}, log)
	t.Cleanup(pk.Close)
	tap := &unitTap{next: pk, got: map[int][]time.Duration{}, pts: map[int][]time.Duration{}}
	srv := &ingest.RTMPServer{Address: "127.0.0.1:0", Sink: tap, Logger: log}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	const wrap = time.Duration(1<<32) * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := testpub.Publish(ctx, "rtmp://"+srv.Addr().String()+"/live/wrap", flv, testpub.Options{
		Unpaced: true, Loops: loops, TimestampOffset: wrap - 6*time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}

	// The last segment is cut when the publisher leaves: wait for it.
	var playlist string
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := pk.Fetch(context.Background(), packager.Request{Stream: "wrap", File: "stream.m3u8", MSN: -1, Part: -1})
		if err == nil {
			playlist = string(res.Body)
			if len(extinf.FindAllString(playlist, -1)) >= 8 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("playlist with 8 segments not reached: %v\n%s", err, playlist)
		}
		time.Sleep(50 * time.Millisecond) // polling the packager's output, not synchronising with it
	}

	m := regexp.MustCompile(`#EXT-X-TARGETDURATION:(\d+)`).FindStringSubmatch(playlist)
	if m == nil {
		t.Fatalf("no TARGETDURATION:\n%s", playlist)
	}
	target, _ := strconv.ParseFloat(m[1], 64)
	var total float64
	for _, e := range extinf.FindAllStringSubmatch(playlist, -1) {
		d, _ := strconv.ParseFloat(e[1], 64)
		total += d
		// RFC 8216bis 4.4.3.1 allows up to target+0.5 (the duration
		// rounded); a loop of the short fixture joins with a gap of up to
		// 0.1s; the 16s fixture is exact.
		if limit := target + 0.1*float64(loops-1)/3; d > limit {
			t.Errorf("EXTINF %v > TARGETDURATION %v", d, target)
		}
	}
	if strings.Contains(playlist, "#EXT-X-DISCONTINUITY") || strings.Contains(playlist, "#EXT-X-GAP") {
		t.Errorf("the wrap shows as a discontinuity or gap:\n%s", playlist)
	}
	t.Logf("%d segments, %.3fs in all", len(extinf.FindAllString(playlist, -1)), total)

	tap.mu.Lock()
	defer tap.mu.Unlock()
	for id, dts := range tap.got {
		for i := 1; i < len(dts); i++ {
			step := dts[i] - dts[i-1]
			if step < 0 || step > 200*time.Millisecond {
				t.Fatalf("track %d: DTS %v then %v (unit %d): not continuous across the wrap", id, dts[i-1], dts[i], i)
			}
		}
		if span := dts[len(dts)-1] - dts[0]; span < 15*time.Second || span > 17*time.Second {
			t.Errorf("track %d spans %v, want about 16s", id, span)
		}
		for i, p := range tap.pts[id] {
			if p < dts[i] {
				t.Fatalf("track %d unit %d: PTS %v < DTS %v", id, i, p, dts[i])
			}
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

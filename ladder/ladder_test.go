package ladder

import (
	"bytes"
	"errors"
	"image/jpeg"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

var testRungs = []Rung{
	{Name: "240p", Height: 240, VideoBitrate: "400k"},
	{Name: "180p", Height: 180, VideoBitrate: "200k"},
}

func TestValidateRungs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rungs []Rung
		want  string // "" for valid
	}{
		{"empty", nil, ""},
		{"two", testRungs, ""},
		{"bad name", []Rung{{Name: "480P", Height: 480, VideoBitrate: "1M"}}, `name "480P"`},
		{"twice", []Rung{{Name: "a", Height: 480, VideoBitrate: "1M"}, {Name: "a", Height: 360, VideoBitrate: "1M"}}, "used twice"},
		{"odd height", []Rung{{Name: "a", Height: 481, VideoBitrate: "1M"}}, "height 481"},
		{"no bitrate", []Rung{{Name: "a", Height: 480}}, "video_bitrate"},
		{"option smuggled in", []Rung{{Name: "a", Height: 480, VideoBitrate: "1M -f null"}}, "video_bitrate"},
	} {
		err := ValidateRungs(tc.rungs)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.want)
		}
	}
}

func TestTSClock(t *testing.T) {
	t.Parallel()
	var c tsClock
	for _, d := range []time.Duration{0, 21 * time.Millisecond, 33366667 * time.Nanosecond, 26*time.Hour + 33*time.Millisecond, 27 * time.Hour, -5 * time.Millisecond} {
		raw := c.in(d)
		if raw < 0 || raw > tsMask {
			t.Fatalf("%v: %d is not a 33-bit value", d, raw)
		}
		if got := c.out(raw); got != d {
			t.Errorf("%v came back as %v", d, got)
		}
		// A value ffmpeg made itself (not fed): within one tick.
		if got := c.out((raw + 3000) & tsMask); got-d < 3000*time.Second/90000-time.Microsecond*12 || got-d > 3000*time.Second/90000+12*time.Microsecond {
			t.Errorf("%v + 3000 ticks came back as %v", d, got)
		}
	}
}

// TestLadderTimestampsAndKeyframes runs real ffmpeg on a real H.264 stream
// with irregular GOPs: every rung frame carries the timestamp of a source
// frame, the rungs have keyframes exactly at the source's keyframes and
// nowhere else, and each variant starts on a keyframe.
func TestLadderTimestampsAndKeyframes(t *testing.T) { checkTimestampsAndKeyframes(t, loadFixture(t)) }

// TestLadderH265 is the same from an H.265 source (an RTSP camera's): the
// rungs are H.264.
func TestLadderH265(t *testing.T) { checkTimestampsAndKeyframes(t, loadFixtureH265(t)) }

// TestLadderBFrames is the same from a source with B-frames: the rungs
// have none, and take the source's decode times, so that each rung's
// keyframe decodes when the source's does.
func TestLadderBFrames(t *testing.T) {
	fx := loadFixtureBFrames(t)
	reordered := 0
	for _, f := range fx.frames {
		if f.pts != f.dts {
			reordered++
		}
	}
	if reordered < len(fx.frames)/2 {
		t.Fatalf("the fixture has %d of %d frames with PTS != DTS: no B-frames", reordered, len(fx.frames))
	}
	checkTimestampsAndKeyframes(t, fx)
}

func checkTimestampsAndKeyframes(t *testing.T, fx *fixture) {
	sink := newFakeSink()
	l := New(Config{Rungs: testRungs}, sink)
	defer l.Close()
	p := startPublisher(t, l, "shop", fx, 1)

	// Four seconds of every rung.
	waitFor(t, "4 s of every rung", 30*time.Second, func() bool {
		for _, r := range testRungs {
			v := sink.variants(r.Name)
			if len(v) == 0 {
				return false
			}
			u := sink.units(v[0])
			if len(u) == 0 || u[len(u)-1].pts-u[0].pts < 4*time.Second {
				return false
			}
		}
		return true
	})
	p.end()
	sent := p.units()
	byPTS := map[time.Duration]recUnit{}
	for _, u := range sent {
		byPTS[u.pts] = u
	}
	for _, r := range testRungs {
		v := sink.variants(r.Name)
		if len(v) != 1 {
			t.Fatalf("%s: %d publications, want 1", r.Name, len(v))
		}
		if v[0].info.Name != "shop" || v[0].info.Variant != r.Name || len(v[0].info.Tracks) != 1 {
			t.Errorf("%s: published as %+v", r.Name, v[0].info)
		}
		units := sink.units(v[0])
		if !units[0].key {
			t.Errorf("%s: the variant starts on a frame that is not a keyframe", r.Name)
		}
		// The k-th rung frame decodes at the k-th source decode time.
		var srcDTS []time.Duration
		for _, u := range sent {
			if u.dts >= units[0].dts {
				srcDTS = append(srcDTS, u.dts)
			}
		}
		keys := 0
		for i, u := range units {
			src, ok := byPTS[u.pts]
			if !ok {
				t.Fatalf("%s: PTS %v is no source frame's", r.Name, u.pts)
			}
			if u.dts > u.pts || i < len(srcDTS) && u.dts != srcDTS[i] {
				t.Errorf("%s: frame %d: DTS %v at PTS %v, the source's %d-th DTS is %v", r.Name, i, u.dts, u.pts, i, srcDTS[min(i, len(srcDTS)-1)])
			}
			if u.key && u.dts != src.dts {
				t.Errorf("%s: keyframe at PTS %v decodes at %v, the source's at %v", r.Name, u.pts, u.dts, src.dts)
			}
			if u.key != src.key {
				t.Errorf("%s: frame at %v: keyframe %v, source keyframe %v", r.Name, u.pts, u.key, src.key)
			}
			if u.key {
				keys++
			}
		}
		if keys < 4 {
			t.Errorf("%s: %d keyframes in %d frames", r.Name, keys, len(units))
		}
		// Every source frame after the variant's first comes back (no
		// frame dropped or added by ffmpeg).
		n := 0
		for _, u := range sent {
			if u.pts >= units[0].pts && u.pts <= units[len(units)-1].pts {
				n++
			}
		}
		if n != len(units) {
			t.Errorf("%s: %d frames for %d source frames", r.Name, len(units), n)
		}
	}
	if s := l.Stats(); s.Dropped != 0 || s.Restarts != 0 || s.Rungs[0].Frames == 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestLadderRestartsAfterKill kills the ladder's ffmpeg: the source goes on
// without losing a unit, and every rung is published again.
func TestLadderRestartsAfterKill(t *testing.T) {
	fx := loadFixture(t)
	sink := newFakeSink()
	logs := &logBuffer{}
	l := New(Config{Rungs: testRungs[:1], RestartMin: 200 * time.Millisecond, Logger: logs.logger()}, sink)
	defer l.Close()
	p := startPublisher(t, l, "shop", fx, 1)
	waitFor(t, "the rung", 30*time.Second, func() bool {
		v := sink.variants("240p")
		return len(v) == 1 && len(sink.units(v[0])) > 0
	})
	pid := l.PID("shop")
	if pid == 0 {
		t.Fatal("no ffmpeg pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, "the rung back", 10*time.Second, func() bool {
		v := sink.variants("240p")
		return len(v) == 2 && len(sink.units(v[1])) > 0
	})
	t.Logf("the rung was back %v after the kill", time.Since(killed).Round(time.Millisecond))
	if l.PID("shop") == pid {
		t.Error("the same pid after a restart")
	}
	v := sink.variants("240p")
	sink.mu.Lock()
	closed := v[0].closed
	sink.mu.Unlock()
	if !closed {
		t.Error("the first variant publication was not closed when its ffmpeg died")
	}
	if units := sink.units(v[1]); !units[0].key {
		t.Error("the new variant does not start on a keyframe")
	}
	p.end()
	// The source's publication got every unit the publisher sent.
	src := sink.pubs[0]
	if got, want := len(sink.units(src)), len(p.units()); got != want {
		t.Errorf("the source got %d units of %d", got, want)
	}
	if s := l.Stats(); s.Restarts != 1 {
		t.Errorf("restarts %d, want 1", s.Restarts)
	}
	if logs.count("ladder ffmpeg ended; starting it again") != 1 {
		t.Errorf("log:\n%s", logs.buf.String())
	}
}

// TestLadderStopsWithSource: the end of the source ends its ffmpeg, which
// is waited for (no zombie), and the variants are closed.
func TestLadderStopsWithSource(t *testing.T) {
	fx := loadFixture(t)
	sink := newFakeSink()
	l := New(Config{Rungs: testRungs[:1]}, sink)
	defer l.Close()
	p := startPublisher(t, l, "shop", fx, 1)
	waitFor(t, "the rung", 30*time.Second, func() bool { return l.PID("shop") != 0 && len(sink.variants("240p")) == 1 })
	pid := l.PID("shop")
	p.end()
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ffmpeg %d still exists after the source closed (%v)", pid, err)
	}
	sink.mu.Lock()
	closed := sink.pubs[1].closed
	sink.mu.Unlock()
	if !closed {
		t.Error("the variant is not closed")
	}
	if n := l.Stats().Running; n != 0 {
		t.Errorf("%d ffmpeg running", n)
	}
}

// TestLadderWithoutFFmpeg: a missing ffmpeg gives one log line, and the
// streams go on untouched.
func TestLadderWithoutFFmpeg(t *testing.T) {
	fx := loadFixture(t)
	sink := newFakeSink()
	logs := &logBuffer{}
	l := New(Config{Rungs: testRungs, FFmpegPath: filepath.Join(t.TempDir(), "ffmpeg"), PosterInterval: time.Second, Logger: logs.logger()}, sink)
	defer l.Close()
	for _, name := range []string{"a", "b"} {
		p := startPublisher(t, l, name, fx, 4)
		waitFor(t, "units", 10*time.Second, func() bool { return len(p.units()) > 60 })
		p.end()
	}
	if n := logs.count("ffmpeg not found"); n != 1 {
		t.Errorf("%d log lines about ffmpeg, want 1:\n%s", n, logs.buf.String())
	}
	if len(sink.pubs) != 2 {
		t.Errorf("%d publications, want the two sources only", len(sink.pubs))
	}
	for _, pub := range sink.pubs {
		if len(sink.units(pub)) < 60 {
			t.Errorf("%s: %d units passed through", pub.info.Name, len(sink.units(pub)))
		}
	}
}

// TestLadderFailingAtStart: an ffmpeg that exits at once leaves the
// stream without a ladder after one clear log line; no restarts.
func TestLadderFailingAtStart(t *testing.T) {
	fx := loadFixture(t)
	bin := filepath.Join(t.TempDir(), "ffmpeg")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'Unknown encoder libx264' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sink := newFakeSink()
	logs := &logBuffer{}
	l := New(Config{Rungs: testRungs, FFmpegPath: bin, RestartMin: 10 * time.Millisecond, Logger: logs.logger()}, sink)
	defer l.Close()
	p := startPublisher(t, l, "shop", fx, 2)
	waitFor(t, "the start failure", 10*time.Second, func() bool { return l.Stats().StartFailures == 1 })
	waitFor(t, "units", 10*time.Second, func() bool { return len(p.units()) > 90 })
	p.end()
	if n := logs.count("failed at start"); n != 1 || logs.count("Unknown encoder libx264") != 1 {
		t.Errorf("%d start failure lines, want 1 with ffmpeg's words:\n%s", n, logs.buf.String())
	}
	if s := l.Stats(); s.Restarts != 0 {
		t.Errorf("%d restarts", s.Restarts)
	}
	if got, want := len(sink.units(sink.pubs[0])), len(p.units()); got != want || len(sink.pubs) != 1 {
		t.Errorf("the source got %d of %d units; %d publications", got, want, len(sink.pubs))
	}
}

// TestLadderSourceGone: a variant refused with ErrSourceGone stops the
// ladder for good, without restarts.
func TestLadderSourceGone(t *testing.T) {
	fx := loadFixture(t)
	sink := newFakeSink()
	l := New(Config{Rungs: testRungs[:1], RestartMin: 10 * time.Millisecond}, sink)
	defer l.Close()
	p := startPublisher(t, l, "shop", fx, 1)
	waitFor(t, "the rung", 30*time.Second, func() bool {
		v := sink.variants("240p")
		return len(v) == 1 && len(sink.units(v[0])) > 0
	})
	sink.mu.Lock()
	sink.pubs[1].gone = true
	sink.mu.Unlock()
	waitFor(t, "the ladder to stop", 10*time.Second, func() bool { return l.Stats().Running == 0 && l.PID("shop") == 0 })
	p.end()
	if s := l.Stats(); s.Restarts != 0 {
		t.Errorf("%d restarts after the source was gone", s.Restarts)
	}
}

// TestPoster: a poster of the source's size that image/jpeg decodes,
// made with or without a ladder, from H.264 and from H.265.
func TestPoster(t *testing.T) {
	for _, tc := range []struct {
		fx    *fixture
		rungs []Rung
	}{{loadFixture(t), nil}, {loadFixture(t), testRungs[:1]}, {loadFixtureH265(t), nil}} {
		fx, rungs := tc.fx, tc.rungs
		sink := newFakeSink()
		l := New(Config{Rungs: rungs, PosterInterval: 500 * time.Millisecond}, sink)
		p := startPublisher(t, l, "shop", fx, 1)
		if _, ok := l.Poster("shop"); ok {
			t.Error("a poster before any keyframe was made")
		}
		waitFor(t, "two posters", 20*time.Second, func() bool { return l.Stats().Posters >= 2 })
		poster, ok := l.Poster("shop")
		if !ok {
			t.Fatal("no poster")
		}
		img, err := jpeg.Decode(bytes.NewReader(poster.JPEG))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != fx.width || b.Dy() != fx.height || poster.Width != fx.width {
			t.Errorf("poster %v, source %dx%d", b, fx.width, fx.height)
		}
		s := l.Stats()
		t.Logf("%T, rungs %d: %d posters, %v CPU each", fx.codec, len(rungs), s.Posters, s.PosterCPU/time.Duration(s.Posters))
		p.end()
		if _, ok := l.Poster("shop"); ok {
			t.Error("the poster outlived its stream")
		}
		l.Close()
		if s.PosterErrors != 0 {
			t.Errorf("%d poster errors", s.PosterErrors)
		}
	}
}

// TestLadderFallsBehind: a source faster than ffmpeg can take fills the
// queue; frames are dropped, never waited for (the source gets every unit
// at once), and ffmpeg is started again.
func TestLadderFallsBehind(t *testing.T) {
	fx := loadFixture(t)
	sink := newFakeSink()
	logs := &logBuffer{}
	l := New(Config{Rungs: testRungs, QueueFrames: 1, RestartMin: 50 * time.Millisecond, Logger: logs.logger()}, sink)
	defer l.Close()
	p := startPublisher(t, l, "shop", fx, 50) // 1500 frames a second
	waitFor(t, "drops and a restart", 30*time.Second, func() bool {
		s := l.Stats()
		return s.Dropped > 0 && s.Restarts > 0
	})
	p.end()
	if got, want := len(sink.units(sink.pubs[0])), len(p.units()); got != want {
		t.Errorf("the source got %d of %d units", got, want)
	}
	if logs.count("fell behind") == 0 {
		t.Errorf("no log line says ffmpeg fell behind:\n%s", logs.buf.String())
	}
}

// TestLadderYieldsToPublisherRenditions: a publisher that sends its own
// variants (OBS's multitrack) ends the server's ladder of its stream, and
// its variant, named like a rung, reaches the packager.
func TestLadderYieldsToPublisherRenditions(t *testing.T) {
	fx := loadFixture(t)
	sink := newFakeSink()
	l := New(Config{Rungs: testRungs[:1]}, sink)
	defer l.Close()
	p := startPublisher(t, l, "shop", fx, 1)
	waitFor(t, "the ladder's rung", 30*time.Second, func() bool {
		v := sink.variants("240p")
		return len(v) == 1 && len(sink.units(v[0])) > 0
	})
	pid := l.PID("shop")
	own, err := l.Publish(ingest.PublishInfo{Name: "shop", Proto: "rtmp", Remote: "127.0.0.1:1",
		Tracks: []*ingest.Track{{ID: 1, Codec: fx.codec}}, Variant: "240p"})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if l.PID("shop") != 0 || l.Stats().Running != 0 {
		t.Error("the server's ladder still runs beside the publisher's renditions")
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ffmpeg %d still exists", pid)
	}
	v := sink.variants("240p")
	sink.mu.Lock()
	ladderClosed := v[0].closed
	sink.mu.Unlock()
	if len(v) != 2 || !ladderClosed || v[1].info.Proto != "rtmp" {
		t.Errorf("variants %d (the ladder's closed: %v)", len(v), ladderClosed)
	}
	before := l.Stats().Dropped
	n := len(p.units())
	waitFor(t, "more source units", 10*time.Second, func() bool { return len(p.units()) > n+30 })
	if d := l.Stats().Dropped; d != before {
		t.Errorf("%d frames counted as dropped after the ladder stopped", d-before)
	}
}

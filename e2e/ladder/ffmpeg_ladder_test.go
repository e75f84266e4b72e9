// Package ladder tests the adaptive bitrate ladder end to end: real
// publishers, the server's own ffmpeg ladder, and independent readers
// (gohlslib's playlist parser, mp4ff, Chromium with hls.js).
package ladder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/ladder"
)

// ladderRungs is the two-rung ladder of these tests.
var ladderRungs = []ladder.Rung{
	{Name: "480p", Height: 480, VideoBitrate: "1200k"},
	{Name: "360p", Height: 360, VideoBitrate: "600k"},
}

// ladderNeedFFmpeg skips t in -short; without ffmpeg the test fails
// (make deps installs it).
func ladderNeedFFmpeg(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is required (make deps installs it)")
	}
}

// ladderServer starts shopcast with the two-rung ladder (or none) and
// quick restarts.
func ladderServer(t *testing.T, rungs []ladder.Rung, edit ...func(*server.Config)) *e2etest.Server {
	t.Helper()
	cfg := e2etest.Config(t)
	cfg.Ladder = rungs
	cfg.LadderRestartMin = 500 * time.Millisecond
	cfg.PosterInterval = time.Second
	cfg.Record = false
	for _, e := range edit {
		e(&cfg)
	}
	return e2etest.Start(t, cfg)
}

// ladderPublish runs ffmpeg publishing 720p30 (a keyframe every 2 s, as
// OBS is told to) over RTMP until the test ends.
func ladderPublish(t *testing.T, rtmpURL string) { ladderPublishGOP(t, rtmpURL, 60, 2500) }

// ladderPublishGOP is ladderPublish with a keyframe every gop frames and
// the video at kbps kbit/s.
func ladderPublishGOP(t *testing.T, rtmpURL string, gop, kbps int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &e2etest.Buffer{}
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "300",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high", "-pix_fmt", "yuv420p",
		"-b:v", fmt.Sprintf("%dk", kbps), "-maxrate", fmt.Sprintf("%dk", kbps), "-bufsize", fmt.Sprintf("%dk", 2*kbps), "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-f", "flv", rtmpURL)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("publisher's ffmpeg:\n%s", out)
		}
	})
}

// ladderGet fetches a URL; an error for anything but a 200.
func ladderGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// ladderWait polls cond until it holds or d passes.
func ladderWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ladderMultivariant reads a stream's multivariant playlist with
// gohlslib's parser.
func ladderMultivariant(base string) (*playlist.Multivariant, error) {
	b, err := ladderGet(base + "/" + hlsname.Multivariant)
	if err != nil {
		return nil, err
	}
	pl, err := playlist.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	mv, ok := pl.(*playlist.Multivariant)
	if !ok {
		return nil, errors.New("index.m3u8 is not a multivariant playlist")
	}
	return mv, nil
}

// ladderMedia reads a media playlist with gohlslib's parser.
func ladderMedia(url string) (*playlist.Media, error) {
	b, err := ladderGet(url)
	if err != nil {
		return nil, err
	}
	pl, err := playlist.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	m, ok := pl.(*playlist.Media)
	if !ok {
		return nil, fmt.Errorf("%s is not a media playlist", url)
	}
	return m, nil
}

// ladderPart is one part a media playlist lists.
type ladderPart struct {
	n   int64
	uri string
	gap bool
	dur time.Duration
}

// ladderParts lists a media playlist's parts by number, from its segments
// and its open segment.
func ladderParts(m *playlist.Media) []ladderPart {
	var out []ladderPart
	add := func(p *playlist.MediaPart) {
		n, err := hlsname.Parse(p.URI)
		if err == nil && n.Kind == hlsname.KindPart {
			out = append(out, ladderPart{n: n.N, uri: p.URI, gap: p.Gap, dur: p.Duration})
		}
	}
	for _, s := range m.Segments {
		for _, p := range s.Parts {
			add(p)
		}
	}
	for _, p := range m.Parts {
		add(p)
	}
	return out
}

// ladderVideo is what a rendition's init segment says of its video track.
type ladderVideo struct {
	trackID       uint32
	timescale     uint32
	width, height uint16
}

func ladderInit(b []byte) (ladderVideo, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		return ladderVideo{}, err
	}
	if f.Init == nil {
		return ladderVideo{}, errors.New("no init segment")
	}
	for _, trak := range f.Init.Moov.Traks {
		if trak.Mdia.Hdlr.HandlerType != "vide" {
			continue
		}
		v := ladderVideo{trackID: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale}
		if sd := trak.Mdia.Minf.Stbl.Stsd; sd != nil && sd.AvcX != nil {
			v.width, v.height = sd.AvcX.Width, sd.AvcX.Height
		} else if sd != nil && sd.HvcX != nil {
			v.width, v.height = sd.HvcX.Width, sd.HvcX.Height
		}
		return v, nil
	}
	return ladderVideo{}, errors.New("no video track")
}

// ladderPartStart is the decode time of a part's first video sample, in
// seconds, and its number of video samples.
func ladderPartStart(b []byte, v ladderVideo) (float64, int, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		return 0, 0, err
	}
	start, n := -1.0, 0
	for _, s := range f.Segments {
		for _, frag := range s.Fragments {
			for _, traf := range frag.Moof.Trafs {
				if traf.Tfhd.TrackID != v.trackID {
					continue
				}
				if start < 0 && traf.Tfdt != nil {
					start = float64(traf.Tfdt.BaseMediaDecodeTime()) / float64(v.timescale)
				}
				for _, trun := range traf.Truns {
					n += int(trun.SampleCount())
				}
			}
		}
	}
	if start < 0 {
		return 0, 0, errors.New("no video tfdt")
	}
	return start, n, nil
}

// ladderInitOf fetches the init segment a media playlist maps.
func ladderInitOf(base string, m *playlist.Media) (ladderVideo, error) {
	if m.Map == nil {
		return ladderVideo{}, errors.New("no EXT-X-MAP")
	}
	b, err := ladderGet(base + "/" + m.Map.URI)
	if err != nil {
		return ladderVideo{}, err
	}
	return ladderInit(b)
}

// ladderMediaURIs are the media playlists of the source and the rungs.
func ladderMediaURIs(base string, rungs []ladder.Rung) map[string]string {
	out := map[string]string{"": base + "/" + hlsname.Media}
	for _, r := range rungs {
		out[r.Name] = base + "/" + r.Name + "." + hlsname.Media
	}
	return out
}

// TestLadderFFmpegEndToEnd: ffmpeg publishes 720p over RTMP; the server's
// two-rung ladder gives a multivariant playlist of three variants whose
// part N starts at the same media time in every variant (mp4ff reads the
// tfdt); killing the ladder's ffmpeg costs the source variant no part, and
// the rungs are back within 10 s.
func TestLadderFFmpegEndToEnd(t *testing.T) {
	ladderNeedFFmpeg(t)
	srv := ladderServer(t, ladderRungs)
	ladderPublish(t, srv.RTMP+"/live/shop")
	base := srv.HTTP + "/live/shop"

	// Three variants, the source first or not, each with its resolution.
	var mv *playlist.Multivariant
	ladderWait(t, 30*time.Second, "three variants", func() bool {
		var err error
		mv, err = ladderMultivariant(base)
		return err == nil && len(mv.Variants) == 3
	})
	res := map[string]string{}
	for _, v := range mv.Variants {
		res[v.URI] = v.Resolution
		if v.Bandwidth <= 0 || len(v.Codecs) == 0 {
			t.Errorf("variant %s: BANDWIDTH %d, CODECS %v", v.URI, v.Bandwidth, v.Codecs)
		}
	}
	for uri, want := range map[string]string{"stream.m3u8": "1280x720", "480p.stream.m3u8": "854x480", "360p.stream.m3u8": "640x360"} {
		if res[uri] != want {
			t.Errorf("variant %s: RESOLUTION %q, want %q (all: %v)", uri, res[uri], want, res)
		}
	}

	// Part alignment: the same part number starts within one frame of the
	// same media time in every variant.
	uris := ladderMediaURIs(base, ladderRungs)
	ladderCheckAligned(t, base, uris, map[string]uint16{"": 720, "480p": 480, "360p": 360})

	// Kill the ladder's ffmpeg.
	pid := srv.Server.Ladder().PID("shop")
	if pid == 0 {
		t.Fatal("no ladder ffmpeg runs")
	}
	lastRung := map[string]int64{}
	for _, r := range ladderRungs {
		m, err := ladderMedia(uris[r.Name])
		if err != nil {
			t.Fatal(err)
		}
		parts := ladderParts(m)
		lastRung[r.Name] = parts[len(parts)-1].n
	}
	srcBefore, err := ladderMedia(uris[""])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	seen := map[int64]ladderPart{}
	record := func() {
		m, err := ladderMedia(uris[""])
		if err != nil {
			t.Errorf("the source playlist during the restart: %v", err)
			return
		}
		for _, p := range ladderParts(m) {
			seen[p.n] = p
		}
	}
	for _, p := range ladderParts(srcBefore) {
		seen[p.n] = p
	}
	// Back: each rung lists a part that is no gap, after its last part
	// before the kill plus a second of gap parts at least.
	back := func() bool {
		record()
		for _, r := range ladderRungs {
			m, err := ladderMedia(uris[r.Name])
			if err != nil {
				return false
			}
			ok := false
			for _, p := range ladderParts(m) {
				if p.n > lastRung[r.Name]+3 && !p.gap {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	ladderWait(t, 10*time.Second, "the rungs back after the kill", back)
	t.Logf("the rungs were back %v after the ladder's ffmpeg was killed", time.Since(killed).Round(100*time.Millisecond))
	if srv.Server.Ladder().PID("shop") == pid {
		t.Error("the same ffmpeg pid after the restart")
	}
	// Two more seconds of the source, then its parts over the whole time:
	// numbered without a hole, none a gap, each with video.
	end := time.Now().Add(2 * time.Second)
	for time.Now().Before(end) {
		record()
		time.Sleep(200 * time.Millisecond)
	}
	var lo, hi int64 = math.MaxInt64, 0
	for n := range seen {
		lo, hi = min(lo, n), max(hi, n)
	}
	var total time.Duration
	for n := lo; n <= hi; n++ {
		p, ok := seen[n]
		switch {
		case !ok:
			t.Errorf("the source has no part %d (parts %d..%d seen)", n, lo, hi)
		case p.gap:
			t.Errorf("the source's part %d is a gap", n)
		default:
			total += p.dur
		}
	}
	if span := time.Since(killed); total < span {
		t.Errorf("the source's parts %d..%d last %v, less than the %v since the kill", lo, hi, total, span)
	}
	if s := srv.Server.Ladder().Stats(); s.Restarts != 1 || s.Running != 1 {
		t.Errorf("ladder stats after one kill: %+v", s)
	}
	metrics, err := ladderGet(srv.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shopcast_ladder_ffmpeg_restarts_total 1\n", "shopcast_ladder_ffmpeg_running 1\n", `shopcast_ladder_rung_frames_total{rung="360p"} `} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// ladderCommonParts are the part numbers, not gaps, that every rendition
// lists.
func ladderCommonParts(t *testing.T, uris map[string]string) []int64 {
	t.Helper()
	count := map[int64]int{}
	for _, u := range uris {
		m, err := ladderMedia(u)
		if err != nil {
			return nil
		}
		for _, p := range ladderParts(m) {
			if !p.gap {
				count[p.n]++
			}
		}
	}
	var out []int64
	for n, c := range count {
		if c == len(uris) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// ladderCheckAligned reads the last six parts every rendition lists and
// fails t unless part N starts within one frame (30 fps) of the same media
// time in each (mp4ff: the video track's tfdt), and each rendition's
// picture has its height.
func ladderCheckAligned(t *testing.T, base string, uris map[string]string, heights map[string]uint16) {
	t.Helper()
	ladderWait(t, 30*time.Second, "six parts in every variant", func() bool {
		return len(ladderCommonParts(t, uris)) >= 6
	})
	common := ladderCommonParts(t, uris)
	maxApart := 0.0
	for _, n := range common[len(common)-6:] {
		starts := map[string]float64{}
		for v, u := range uris {
			m, err := ladderMedia(u)
			if err != nil {
				t.Fatal(err)
			}
			video, err := ladderInitOf(base, m)
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			if want := heights[v]; video.height != want {
				t.Errorf("variant %q: video height %d, want %d", v, video.height, want)
			}
			name := hlsname.Part(n)
			if v != "" {
				name = v + "." + name
			}
			b, err := ladderGet(base + "/" + name)
			if err != nil {
				t.Fatal(err)
			}
			start, samples, err := ladderPartStart(b, video)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if samples == 0 {
				t.Errorf("%s: no video samples", name)
			}
			starts[v] = start
		}
		if len(starts) != len(uris) {
			t.Fatalf("part %d: %d renditions read", n, len(starts))
		}
		for v, s := range starts {
			d := math.Abs(s - starts[""])
			maxApart = max(maxApart, d)
			if d > 1.0/30 {
				t.Errorf("part %d: variant %q starts at %.4f s, the source at %.4f s (%.1f ms apart)", n, v, s, starts[""], d*1000)
			}
		}
	}
	t.Logf("parts %d..%d of %d renditions start at most %.1f ms apart", common[len(common)-6], common[len(common)-1], len(uris), maxApart*1000)
}

// TestLadderRTSPH265: a camera-like publisher (ffmpeg, H.265 with
// B-frames and AAC over RTSP/TCP) gets the ladder too: H.264 rungs, parts
// aligned with the H.265 source's.
func TestLadderRTSPH265(t *testing.T) {
	ladderNeedFFmpeg(t)
	rungs := []ladder.Rung{
		{Name: "360p", Height: 360, VideoBitrate: "600k"},
		{Name: "240p", Height: 240, VideoBitrate: "300k"},
	}
	srv := ladderServer(t, rungs)
	ctx, cancel := context.WithCancel(context.Background())
	out := &e2etest.Buffer{}
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=854x480:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "120",
		"-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "1500k",
		"-x265-params", "log-level=error:keyint=60:min-keyint=60:scenecut=0:bframes=2",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
		"-f", "rtsp", "-rtsp_transport", "tcp", srv.RTSP+"/live/cam")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("publisher's ffmpeg:\n%s", out)
		}
	})
	base := srv.HTTP + "/live/cam"
	var mv *playlist.Multivariant
	ladderWait(t, 45*time.Second, "three variants", func() bool {
		var err error
		mv, err = ladderMultivariant(base)
		return err == nil && len(mv.Variants) == 3
	})
	codecs := map[string]string{}
	for _, v := range mv.Variants {
		codecs[v.URI] = strings.Join(v.Codecs, ",")
	}
	if !strings.HasPrefix(codecs["stream.m3u8"], "hvc1") && !strings.HasPrefix(codecs["stream.m3u8"], "hev1") {
		t.Errorf("source CODECS %q, want H.265", codecs["stream.m3u8"])
	}
	for _, r := range rungs {
		if c := codecs[r.Name+".stream.m3u8"]; !strings.HasPrefix(c, "avc1") {
			t.Errorf("rung %s CODECS %q, want H.264", r.Name, c)
		}
	}
	ladderCheckAligned(t, base, ladderMediaURIs(base, rungs), map[string]uint16{"": 480, "360p": 360, "240p": 240})
}

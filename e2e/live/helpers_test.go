package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// startServer starts shopcast (internal/server, as the binary runs it) on
// loopback ports with the defaults, changed by edit.
func startServer(t *testing.T, edit ...func(*server.Config)) *e2etest.Server {
	t.Helper()
	return e2etest.Start(t, testConfig(t, edit))
}

// startServerDebug is startServer logging at debug level: with an access
// log line per request, for the tests that check what is never logged.
func startServerDebug(t *testing.T, edit ...func(*server.Config)) *e2etest.Server {
	t.Helper()
	return e2etest.StartDebug(t, testConfig(t, edit))
}

func testConfig(t *testing.T, edit []func(*server.Config)) server.Config {
	cfg := e2etest.Config(t)
	for _, e := range edit {
		e(&cfg)
	}
	return cfg
}

// needFFmpeg skips t in -short and returns ffmpeg's path; without ffmpeg
// the test fails.
func needFFmpeg(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is required (make test installs it)")
	}
	return ffmpeg
}

// publishAndWait publishes the fixture to srv as stream name until the test
// ends (publishFor), and waits for its multivariant playlist.
func publishAndWait(t *testing.T, srv *e2etest.Server, name string) {
	t.Helper()
	publishFor(t, srv.RTMP+"/live/"+name)
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, srv.HTTP+"/live/"+name+"/index.m3u8")
		return code == 200
	})
}

// playlistChecker follows a media playlist with blocking reloads, as an
// LL-HLS player does, parses every version with gohlslib's parser, checks
// the LL-HLS rules on it, and checks every part it lists with mp4ff.
// maxPublicationJumps bounds the video decode-time jumps a checker accepts:
// the tests that use it publish at most four times on one stream.
const maxPublicationJumps = 4

type playlistChecker struct {
	t        *testing.T
	base     string // http://HOST/live/NAME/
	versions int
	td       int
	parts    map[string]bool
	lastMSN  int
	discs    int
	jumps    int // video tfdt jumps at a publication change (checkPart)
	ended    bool
	tfdt     map[uint32]uint64 // next expected tfdt by track, within one publication
	maps     map[string]bool
	errs     []string
	// strictTfdt checks decode-time continuity of every track, not only
	// video, for publishers whose audio has no gaps.
	strictTfdt bool
	// segments maps each complete segment checked to its video sample count.
	segments     map[string]int
	partBytes    map[string][]byte
	videoSamples int
	done         chan struct{} // closed when the run start began ends
}

func newPlaylistChecker(t *testing.T, base string) *playlistChecker {
	return &playlistChecker{t: t, base: base, parts: map[string]bool{}, segments: map[string]int{}, partBytes: map[string][]byte{}, tfdt: map[uint32]uint64{}, maps: map[string]bool{}}
}

// start runs the checker in the background until the playlist ends or
// ctx is done.
func (c *playlistChecker) start(ctx context.Context) {
	c.done = make(chan struct{})
	go func() { defer close(c.done); c.run(ctx) }()
}

// wait waits for the run start began to end, and reports what the checker
// found.
func (c *playlistChecker) wait() {
	c.t.Helper()
	<-c.done
	for _, e := range c.errs {
		c.t.Error(e)
	}
}

// startStrictChecker starts a playlistChecker of the media playlist under
// base that checks the decode times of every track, for publishers whose
// audio has no gaps.
func startStrictChecker(ctx context.Context, t *testing.T, base string) *playlistChecker {
	c := newPlaylistChecker(t, base)
	c.strictTfdt = true
	c.start(ctx)
	return c
}

// waitFFmpeg waits for ffmpeg (cmd, its stderr in out) to end, and fails
// the test if it failed.
func waitFFmpeg(t *testing.T, cmd *exec.Cmd, out fmt.Stringer) {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

func (c *playlistChecker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// run follows the playlist until it ends, ctx is done, or a request fails.
func (c *playlistChecker) run(ctx context.Context) {
	url := c.base + "stream.m3u8"
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			if resp.StatusCode == http.StatusNotFound {
				return
			}
			c.errorf("GET %s: %d", url, resp.StatusCode)
			return
		}
		if !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
			c.errorf("playlist without a cacheable Cache-Control: %q", resp.Header.Get("Cache-Control"))
		}
		pl, err := playlist.Unmarshal(body)
		if err != nil {
			c.errorf("gohlslib cannot parse playlist: %v\n%s", err, body)
			return
		}
		m, ok := pl.(*playlist.Media)
		if !ok {
			c.errorf("not a media playlist")
			return
		}
		c.versions++
		c.check(m, body)
		if m.Endlist {
			c.ended = true
			return
		}
		// Next: the part after the last one listed (RFC 8216bis 6.2.5.2).
		msn := m.MediaSequence + len(m.Segments)
		part := 0
		if len(m.Parts) > 0 {
			part = len(m.Parts)
		}
		url = fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d&_HLS_part=%d", c.base, msn, part)
	}
}

func (c *playlistChecker) check(m *playlist.Media, body []byte) {
	if c.td == 0 {
		c.td = m.TargetDuration
	} else if c.td != m.TargetDuration {
		c.errorf("EXT-X-TARGETDURATION changed from %d to %d", c.td, m.TargetDuration)
	}
	if m.ServerControl == nil || !m.ServerControl.CanBlockReload || m.PartInf == nil || m.ServerControl.PartHoldBack == nil {
		c.errorf("missing server control or part inf:\n%s", body)
		return
	}
	pt := m.PartInf.PartTarget
	if phb := *m.ServerControl.PartHoldBack; phb < 3*pt-time.Millisecond {
		c.errorf("PART-HOLD-BACK %v < 3 x PART-TARGET %v", phb, pt)
	}
	if m.MediaSequence < c.lastMSN {
		c.errorf("media sequence went back from %d to %d", c.lastMSN, m.MediaSequence)
	}
	c.lastMSN = m.MediaSequence
	// Between publishers (the reconnect grace period) nothing is hinted.
	if !m.Endlist && m.PreloadHint == nil && len(m.Parts) > 0 {
		c.errorf("live playlist without EXT-X-PRELOAD-HINT")
	}
	if strings.Count(string(body), "#EXT-X-PROGRAM-DATE-TIME") < len(m.Segments) {
		c.errorf("a segment lacks EXT-X-PROGRAM-DATE-TIME")
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#EXT-X-MAP:URI=") {
			c.maps[strings.Trim(strings.TrimPrefix(line, "#EXT-X-MAP:URI="), `"`)] = true
		}
	}
	check := func(parts []*playlist.MediaPart) {
		for i, p := range parts {
			if p.Duration > pt {
				c.errorf("part %s lasts %v > PART-TARGET %v", p.URI, p.Duration, pt)
			}
			// The last part of a segment may be short; in the open segment
			// the newest part may turn out to be its last.
			last := i == len(parts)-1
			if p.Duration < pt*85/100 && !p.Independent && !last {
				c.errorf("part %s lasts %v < 85%% of PART-TARGET", p.URI, p.Duration)
			}
			c.checkPart(p)
		}
	}
	for _, seg := range m.Segments {
		if seg.Duration.Round(time.Second) > time.Duration(m.TargetDuration)*time.Second {
			c.errorf("segment %s lasts %v > target duration", seg.URI, seg.Duration)
		}
		if len(seg.Parts) > 0 && !seg.Parts[0].Independent {
			c.errorf("segment %s does not start with an independent part", seg.URI)
		}
		check(seg.Parts)
		c.checkSegment(seg)
		if seg.Discontinuity {
			c.discs++
		}
	}
	check(m.Parts)
}

// checkPart fetches a part once and checks its boxes with mp4ff: a moof and
// mdat, decode times continuing from the previous part of the same track.
func (c *playlistChecker) checkPart(p *playlist.MediaPart) {
	if c.parts[p.URI] {
		return
	}
	c.parts[p.URI] = true
	resp, err := http.Get(c.base + p.URI)
	if err != nil {
		c.errorf("GET part %s: %v", p.URI, err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.errorf("GET part %s: %d", p.URI, resp.StatusCode)
		return
	}
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		c.errorf("mp4ff cannot decode part %s: %v", p.URI, err)
		return
	}
	if len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 {
		c.errorf("part %s is not one fragment", p.URI)
		return
	}
	c.partBytes[p.URI] = body
	frag := f.Segments[0].Fragments[0]
	var videoDur uint64
	for _, traf := range frag.Moof.Trafs {
		id := traf.Tfhd.TrackID
		base := traf.Tfdt.BaseMediaDecodeTime()
		if want, ok := c.tfdt[id]; ok && (id == 1 || c.strictTfdt) && base != want {
			// A new publication continues the timeline after everything
			// published on any track, so when the old one's audio ran ahead
			// of its video, the new video starts that much later: a jump
			// forward, on a key frame, shorter than a part, once per
			// publication.
			jump := time.Duration(base-want) * time.Second / 90000
			if id == 1 && base > want && p.Independent && jump < 500*time.Millisecond && c.jumps < maxPublicationJumps {
				c.jumps++
			} else {
				c.errorf("part %s track %d: tfdt %d, previous part ended at %d", p.URI, id, base, want)
			}
		}
		var sum uint64
		for _, trun := range traf.Truns {
			for _, s := range trun.Samples {
				sum += uint64(s.Dur)
			}
		}
		c.tfdt[id] = base + sum
		if id == 1 {
			videoDur = sum
		}
	}
	if got := time.Duration(videoDur) * time.Second / 90000; absDur(got-p.Duration) > time.Millisecond {
		c.errorf("part %s: samples last %v, playlist says %v", p.URI, got, p.Duration)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// checkSegment fetches a complete segment once, counts its video samples and
// checks that it holds exactly the bytes of its parts (RFC 8216bis: a part
// and its parent segment carry the same media).
func (c *playlistChecker) checkSegment(seg *playlist.MediaSegment) {
	if _, ok := c.segments[seg.URI]; ok {
		return
	}
	resp, err := http.Get(c.base + seg.URI)
	if err != nil {
		c.errorf("GET %s: %v", seg.URI, err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.errorf("GET %s: %d", seg.URI, resp.StatusCode)
		return
	}
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		c.errorf("mp4ff cannot decode %s: %v", seg.URI, err)
		return
	}
	n := countVideoSamples(f)
	c.segments[seg.URI] = n
	c.videoSamples += n
	if len(seg.Parts) > 0 {
		var joined []byte
		for _, p := range seg.Parts {
			b, ok := c.partBytes[p.URI]
			if !ok {
				return
			}
			joined = append(joined, b...)
		}
		if !bytes.Equal(joined, body) {
			c.errorf("segment %s differs from the concatenation of its parts", seg.URI)
		}
	}
}

// countVideoSamples counts the video (track 1) samples of an fMP4 file.
func countVideoSamples(f *mp4.File) int {
	n := 0
	for _, s := range f.Segments {
		for _, frag := range s.Fragments {
			for _, traf := range frag.Moof.Trafs {
				if traf.Tfhd.TrackID == 1 {
					for _, trun := range traf.Truns {
						n += int(trun.SampleCount())
					}
				}
			}
		}
	}
	return n
}

// checkFrameSteps fails t unless the video AUs gohlslib read step by a
// frame at 30 fps (3000 ticks at 90 kHz) and the AAC frames by 1024
// samples.
func checkFrameSteps(t *testing.T, r *codecReceived) {
	t.Helper()
	for i := 1; i < len(r.video); i++ {
		if d := r.video[i].pts - r.video[i-1].pts; d < 2990 || d > 3010 {
			t.Fatalf("video AU %d: PTS step %d, want 3000 (30 fps)", i, d)
		}
	}
	for i := 1; i < len(r.audio); i++ {
		if d := r.audio[i].pts - r.audio[i-1].pts; d != 1024 {
			t.Fatalf("AAC frame %d: PTS step %d, want 1024", i, d)
		}
	}
}

// errNoAlignment is matchInOrder's answer when no sent AU has the payload
// of the first one received.
var errNoAlignment = errors.New("no sent AU meets the first received one")

// matchInOrder checks that got, shifted so that its first AU meets a sent
// AU with the same payload, is a subsequence of want (decode order) with
// equal payloads and PTS within tol. It tries each such alignment in turn;
// when none holds it returns the failure of the first, from miss (received
// AU i, g, matched no sent one at offset off), or errNoAlignment.
func matchInOrder(got, want []timedAU, tol int64, miss func(i int, g timedAU, off int64) error) error {
	if len(got) == 0 {
		return fmt.Errorf("nothing received")
	}
	var firstErr error
	for k := range want {
		if want[k].hash != got[0].hash {
			continue
		}
		off := want[k].pts - got[0].pts
		j := k
		var err error
		for i, g := range got {
			// Decode order: skip the sent AUs the reader missed.
			for j < len(want) && (want[j].hash != g.hash || absInt(want[j].pts-(g.pts+off)) > tol) {
				j++
			}
			if j == len(want) {
				err = miss(i, g, off)
				break
			}
			j++
		}
		if err == nil {
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		return errNoAlignment
	}
	return firstErr
}

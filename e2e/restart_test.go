package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/hlsname"
)

// How long the restart test reads each session. Two segments at least
// (the publisher's GOP is the 2 s target duration), short enough that the
// whole test stays well under a minute.
const (
	restartBefore = 7 * time.Second
	restartAfter  = 4 * time.Second
)

// TestRestartNumbering is issue 13 item 4's check: shopcast, the binary,
// is killed with SIGKILL mid-stream and started again on the same ports and
// cue store, with Varnish from deploy/varnish in front, as a CDN would be.
// A viewer must never be served, under a name it saw before the crash,
// other bytes than it got then, from the origin or from the edge's cache.
// So after the restart:
//
//   - every EXT-X-MEDIA-SEQUENCE, from the origin and through the edge, is
//     above the newest media sequence number of the crashed session (it
//     never decreases, and a segment keeps its number: the RFC 8216bis
//     rule packager.Config.FirstNumbers quotes);
//
//   - every file of the crashed session is either gone (404) or the same
//     bytes, from both; every file the new session lists has a name the
//     crashed one never used, its init section included;
//
//   - the edge holds nothing stale under a new name: each new file through
//     it is the origin's bytes;
//
//   - the playlists parse with gohlslib's parser.
//
//   - the discontinuity sequence grows too (RFC 8216bis 6.2.2): the first
//     session's is 0, the new one's the next block internal/discseq keeps
//     next to the cue store.
func TestRestartNumbering(t *testing.T) {
	if testing.Short() {
		t.Skip("restart end-to-end test: not in -short")
	}
	ffmpeg := requireTool(t, "ffmpeg", "ffmpeg")
	varnishd := requireTool(t, "varnishd", "varnish")
	bin := buildShopcast(t)

	httpAddr, rtmpAddr := e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	srv := &shopcastProc{bin: bin, http: httpAddr, args: []string{
		"-http", httpAddr, "-rtmp", rtmpAddr, "-rtsp", e2etest.FreeAddr(t),
		"-rtsp_udp_rtp=", "-rtsp_udp_rtcp=",
		"-cue_store", filepath.Join(t.TempDir(), "cues.db"),
	}}
	t.Cleanup(func() { srv.stop(t) })
	srv.start(t)

	edgeAddr := e2etest.FreeAddr(t)
	startVarnish(t, varnishd, t.TempDir(), edgeAddr, httpAddr)

	r := &restartRun{
		t:        t,
		client:   &http.Client{Timeout: 10 * time.Second},
		reported: map[string]bool{},
		bases: map[string]string{
			"origin":  "http://" + httpAddr + "/live/" + restartStream + "/",
			"varnish": "http://" + edgeAddr + "/live/" + restartStream + "/",
		},
	}
	publishURL := "rtmp://" + rtmpAddr + "/live/" + restartStream

	// The crashed session.
	pub := startPublisher(t, ffmpeg, publishURL, 440)
	before := newSessionNames()
	r.waitLive(before, nil)
	r.observe(before, restartBefore, nil)
	old := before.summary()

	killed := time.Now()
	srv.kill(t)
	select {
	case <-pub.done:
		t.Logf("ffmpeg stopped %v after the kill (its connection died)", time.Since(killed).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Logf("ffmpeg still ran 5 s after the kill; stopping it")
		pub.kill()
	}

	// The new session: same ports, same cue store, a new publisher to the
	// same name, as OBS's reconnect would be. Its tone is another one:
	// ffmpeg's test sources are deterministic, and with the same settings
	// a file reused under an old name would have the same bytes.
	srv.start(t)
	startPublisher(t, ffmpeg, publishURL, 880)
	after := newSessionNames()
	check := func(from, file string, m *playlist.Media) {
		t.Helper()
		if int64(m.MediaSequence) <= before.newest {
			r.errorOnce("msn", "%s %s after the restart: EXT-X-MEDIA-SEQUENCE %d, not above the crashed session's newest %d",
				from, file, m.MediaSequence, before.newest)
		}
		if m.Map != nil && slices.Contains(before.inits, m.Map.URI) {
			r.errorOnce("init", "%s %s after the restart: the init section %s has the crashed session's name", from, file, m.Map.URI)
		}
		for _, u := range listed(m) {
			if _, ok := before.sums[u]; ok {
				r.errorOnce(u, "%s %s after the restart lists %s, a name of the crashed session", from, file, u)
			}
		}
		if m.DiscontinuitySequence != nil {
			after.dsn = fmt.Sprint(*m.DiscontinuitySequence)
		}
	}
	r.waitLive(after, check)
	back := time.Since(killed)
	r.observe(after, restartAfter, check)

	// Every name of the crashed session again: gone or the same bytes.
	gone, same := map[string]int{}, map[string]int{}
	for _, file := range slices.Sorted(maps.Keys(before.sums)) {
		for _, from := range []string{"origin", "varnish"} {
			f, err := r.fetch(from, file)
			switch {
			case err != nil:
				t.Errorf("%s %s after the restart: %v", from, file, err)
			case f.code == http.StatusNotFound:
				gone[from]++
			case f.code != http.StatusOK:
				t.Errorf("%s %s after the restart: %d, want 404 or the crashed session's bytes", from, file, f.code)
			case sha256.Sum256(f.body) != before.sums[file]:
				t.Errorf("%s %s after the restart: other bytes (%d) than before the crash", from, file, len(f.body))
			default:
				same[from]++
			}
		}
	}

	t.Logf("before the kill: EXT-X-MEDIA-SEQUENCE %d, newest MSN %d, init %s, %s",
		before.mediaSequence, before.newest, strings.Join(before.inits, " "), old)
	t.Logf("the stream was back from the origin and through varnish %v after the kill", back.Round(time.Millisecond))
	t.Logf("after the restart: EXT-X-MEDIA-SEQUENCE %d, newest MSN %d, init %s, %s; EXT-X-DISCONTINUITY-SEQUENCE %s",
		after.mediaSequence, after.newest, strings.Join(after.inits, " "), after.summary(), after.dsn)
	t.Logf("the crashed session's %d names fetched again: origin %d gone, %d same bytes; varnish %d gone, %d same bytes",
		len(before.sums), gone["origin"], same["origin"], gone["varnish"], same["varnish"])
	t.Logf("varnish: %d of %d deliveries were hits; %d new-session files compared with the origin's",
		r.hits, r.edgeGets, len(after.sums))
	if after.dsn == "absent" || after.dsn == "0" {
		t.Errorf("after the restart the discontinuity sequence is %s: not above the crashed session's 0", after.dsn)
	}
	if len(after.inits) == 0 || len(after.sums) == 0 {
		t.Errorf("the new session listed no files")
	}
}

const restartStream = "restart"

// restartRun reads a stream from the origin and through the edge.
type restartRun struct {
	t      *testing.T
	client *http.Client
	// bases are the stream's directory URLs, by where they are read.
	bases map[string]string
	// hits counts edge deliveries that were hits (X-Cache, see
	// deploy/varnish), of edgeGets.
	hits, edgeGets int
	// reported holds what was reported, since every playlist read would
	// repeat it.
	reported map[string]bool
}

// errorOnce reports an error unless one about what was reported before.
func (r *restartRun) errorOnce(what, format string, args ...any) {
	r.t.Helper()
	if !r.reported[what] {
		r.reported[what] = true
		r.t.Errorf(format, args...)
	}
}

// sessionNames is what one server session served.
type sessionNames struct {
	// sums is the sha256 of every file listed, by name.
	sums  map[string][sha256.Size]byte
	inits []string
	// mediaSequence is the last EXT-X-MEDIA-SEQUENCE read; newest the
	// highest media sequence number listed (the segment being written
	// included).
	mediaSequence, newest int64
	dsn                   string // EXT-X-DISCONTINUITY-SEQUENCE, "absent" when none
}

func newSessionNames() *sessionNames {
	return &sessionNames{sums: map[string][sha256.Size]byte{}, newest: -1, dsn: "absent"}
}

// summary counts the names by kind.
func (s *sessionNames) summary() string {
	n := map[hlsname.Kind]int{}
	for file := range s.sums {
		name, _ := hlsname.Parse(file)
		n[name.Kind]++
	}
	return fmt.Sprintf("%d names (%d parts, %d segments, %d TS segments, %d init)", len(s.sums),
		n[hlsname.KindPart], n[hlsname.KindSegment], n[hlsname.KindTSSegment], n[hlsname.KindInit])
}

// fetched is one response.
type fetched struct {
	code int
	body []byte
	hit  bool // the edge's X-Cache
}

func (r *restartRun) fetch(from, file string) (fetched, error) {
	resp, err := r.client.Get(r.bases[from] + file)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fetched{}, err
	}
	f := fetched{code: resp.StatusCode, body: body, hit: resp.Header.Get("X-Cache") == "HIT"}
	if from == "varnish" {
		r.edgeGets++
		if f.hit {
			r.hits++
		}
	}
	return f, nil
}

// playlist reads a media playlist; it returns nil when there is none (yet).
// A playlist that gohlslib cannot parse fails the test.
func (r *restartRun) playlist(from, file string, s *sessionNames, check func(from, file string, m *playlist.Media)) *playlist.Media {
	t := r.t
	t.Helper()
	f, err := r.fetch(from, file)
	if err != nil {
		t.Fatalf("%s %s: %v", from, file, err)
	}
	if f.code != http.StatusOK {
		return nil
	}
	pl, err := playlist.Unmarshal(f.body)
	if err != nil {
		t.Fatalf("%s %s: gohlslib: %v\n%s", from, file, err, f.body)
	}
	m, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("%s %s: not a media playlist:\n%s", from, file, f.body)
	}
	if check != nil {
		check(from, file, m)
	}
	s.mediaSequence = int64(m.MediaSequence)
	newest := int64(m.MediaSequence + len(m.Segments))
	if len(m.Parts) == 0 {
		newest--
	}
	s.newest = max(s.newest, newest)
	if m.Map != nil && !slices.Contains(s.inits, m.Map.URI) {
		s.inits = append(s.inits, m.Map.URI)
	}
	return m
}

// record fetches each file m lists that s has not seen, from the origin
// and through the edge, and keeps its sum: both must answer 200 with the
// same bytes, or the edge is serving an object the origin does not have.
func (r *restartRun) record(m *playlist.Media, s *sessionNames) {
	t := r.t
	t.Helper()
	for _, file := range listed(m) {
		if _, ok := s.sums[file]; ok {
			continue
		}
		o, err := r.fetch("origin", file)
		if err != nil || o.code != http.StatusOK {
			t.Fatalf("origin %s: %d %v", file, o.code, err)
		}
		e, err := r.fetch("varnish", file)
		if err != nil || e.code != http.StatusOK {
			t.Fatalf("varnish %s: %d %v", file, e.code, err)
		}
		sum := sha256.Sum256(o.body)
		if sha256.Sum256(e.body) != sum {
			t.Fatalf("varnish %s: %d bytes that are not the origin's %d (hit: %v)", file, len(e.body), len(o.body), e.hit)
		}
		s.sums[file] = sum
	}
}

// waitLive waits until both playlists answer from the origin and through
// the edge, every playlist read on the way going through check.
func (r *restartRun) waitLive(s *sessionNames, check func(from, file string, m *playlist.Media)) {
	r.t.Helper()
	e2etest.WaitUntil(r.t, 20*time.Second, "the stream's playlists, from the origin and through varnish", func() bool {
		for _, from := range []string{"origin", "varnish"} {
			for _, file := range []string{hlsname.Media, hlsname.TSMedia} {
				if r.playlist(from, file, s, check) == nil {
					return false
				}
			}
		}
		return true
	})
}

// observe follows the stream for d as an LL-HLS player behind the edge
// does (a blocking reload for the next part through varnish), reads the
// plain playlists from both, and records every file they list.
func (r *restartRun) observe(s *sessionNames, d time.Duration, check func(from, file string, m *playlist.Media)) {
	t := r.t
	t.Helper()
	next := ""
	for end := time.Now().Add(d); time.Now().Before(end); {
		if next != "" {
			if m := r.playlist("varnish", next, s, check); m == nil {
				t.Fatalf("varnish %s: no playlist", next)
			}
		}
		for _, from := range []string{"origin", "varnish"} {
			for _, file := range []string{hlsname.Media, hlsname.TSMedia} {
				m := r.playlist(from, file, s, check)
				if m == nil {
					t.Fatalf("%s %s: no playlist", from, file)
				}
				r.record(m, s)
				if from == "origin" && file == hlsname.Media {
					// RFC 8216bis 6.2.5.2: the next part, _HLS_part
					// counting from 0 within segment _HLS_msn.
					next = fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", hlsname.Media,
						m.MediaSequence+len(m.Segments), len(m.Parts))
				}
			}
		}
	}
}

// listed returns the file names a media playlist lists: its init section,
// segments and parts (not the preload hint, which may not exist yet).
func listed(m *playlist.Media) []string {
	var files []string
	if m.Map != nil {
		files = append(files, m.Map.URI)
	}
	for _, seg := range m.Segments {
		for _, p := range seg.Parts {
			files = append(files, p.URI)
		}
		files = append(files, seg.URI)
	}
	for _, p := range m.Parts {
		files = append(files, p.URI)
	}
	return files
}

// requireTool finds a program the test cannot do without: missing, it
// skips the test, or fails it under CI=true.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := lookBin(name)
	if err != nil {
		msg := fmt.Sprintf("%s is missing (make deps as root, or apt-get install %s): %v", name, pkg, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// buildShopcast builds cmd/shopcast into the test's temp dir, with the
// race detector when the test has it (the build cache then already holds
// every package).
func buildShopcast(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shopcast")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/shopcast")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/shopcast: %v\n%s", err, out)
	}
	return bin
}

// shopcastProc is the shopcast binary run as its own process, which can be
// killed and started again with the same arguments.
type shopcastProc struct {
	bin, http string
	args      []string
	cmd       *exec.Cmd
	done      chan struct{}
	// logs holds the output of every run, for a failed test.
	logs []*e2etest.Buffer
}

// start runs the binary and waits until /readyz answers 200.
func (p *shopcastProc) start(t *testing.T) {
	t.Helper()
	out := &e2etest.Buffer{}
	p.logs = append(p.logs, out)
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	go func() { _ = p.cmd.Wait(); close(done) }()
	e2etest.WaitUntil(t, 15*time.Second, "shopcast's /readyz", func() bool {
		select {
		case <-done:
			t.Fatalf("shopcast exited: %v\n%s", p.cmd.ProcessState, out)
		default:
		}
		code, _ := status(http.MethodGet, "http://"+p.http+"/readyz")
		return code == http.StatusOK
	})
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *shopcastProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("shopcast ended with %v, not killed", p.cmd.ProcessState)
	}
}

// stop ends the last run with SIGTERM (SIGKILL after 15 s) at cleanup.
func (p *shopcastProc) stop(t *testing.T) {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Errorf("shopcast did not stop 15 s after SIGTERM")
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	for i, out := range p.logs {
		// A binary built with -race reports races on its stderr.
		if strings.Contains(out.String(), "WARNING: DATA RACE") {
			t.Errorf("shopcast run %d reported a data race", i+1)
		}
	}
	if t.Failed() {
		for i, out := range p.logs {
			t.Logf("shopcast run %d output:\n%s", i+1, e2etest.Tail(out.String(), 4000))
		}
	}
}

// publisher is an ffmpeg process publishing over RTMP.
type publisher struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *publisher) kill() { _ = p.cmd.Process.Kill(); <-p.done }

// startPublisher publishes a test pattern and a tone of hz in real time
// with OBS's settings and a keyframe every 2 s, the server's target
// duration, for at most a minute.
func startPublisher(t *testing.T, ffmpeg, rtmpURL string, hz int) *publisher {
	t.Helper()
	out := &e2etest.Buffer{}
	cmd := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", hz), "-t", "60",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high",
		"-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-f", "flv", rtmpURL)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &publisher{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("ffmpeg output:\n%s", e2etest.Tail(out.String(), 3000))
		}
	})
	return p
}

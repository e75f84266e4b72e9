package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	m3u8 "github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/hlsname"
	shopcast "github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/ladder"
)

// LadderRungs is the two-rung ladder of the ladder benchmark.
var LadderRungs = []ladder.Rung{
	{Name: "480p", Height: 480, VideoBitrate: "1200k"},
	{Name: "360p", Height: 360, VideoBitrate: "600k"},
}

// LadderConfig configures the ladder benchmark.
type LadderConfig struct {
	// FLV is the 720p30 file the publisher (ffmpeg -re -stream_loop -1 -c
	// copy, a separate process) replays (Fixture).
	FLV string
	// Duration is each mode's measurement window. It defaults to 30s.
	Duration time.Duration
	// Settle is how long the stream and its ladder run before the window
	// opens. It defaults to 6s.
	Settle time.Duration
	// Rounds is how many times integrated and by hand are measured, in
	// turn (the machine's load moves between runs). It defaults to 2.
	Rounds int
}

// LadderResult is what one way of making the ladder cost.
type LadderResult struct {
	// Mode is "integrated" (the server's ladder config), "by hand" (the
	// same ffmpeg encoding, started by hand, reading the source back from
	// the origin and publishing each rung over RTMP as a stream of its own)
	// or "posters" (no ladder, a poster every 5 s: FFmpegCPU is then the
	// poster ffmpegs').
	Mode   string
	Window time.Duration
	// ServerCPU is shopcast's own CPU (getrusage RUSAGE_SELF: without its
	// ffmpeg children); FFmpegCPU the ladder ffmpeg's (from /proc over the
	// window); PublisherCPU the publisher's.
	ServerCPU, FFmpegCPU, PublisherCPU time.Duration
	// Delay is, per rung, how much later than the source's part N the
	// rung's part N is listed in its playlist (integrated only: by hand,
	// the rungs are other streams with parts of their own).
	Delay map[string]Dist
	// Frames is how many frames the first rung gave back over the window
	// (the source runs at 30 fps): CPU per frame is what compares.
	Frames int64
	// Restarts and Dropped are the ladder's counters over the window.
	Restarts, Dropped uint64
	// Posters is how many posters were made over the window (posters).
	Posters uint64
	Load    string
}

func cores(d, window time.Duration) float64 { return d.Seconds() / window.Seconds() }

func (r LadderResult) String() string {
	var b strings.Builder
	perFrame := func(d time.Duration) string {
		if r.Frames == 0 {
			return "-"
		}
		return ms(d / time.Duration(r.Frames))
	}
	if r.Mode == "posters" {
		fmt.Fprintf(&b, "%-10s ffmpeg %5.2f%% of a core, shopcast %5.2f%%, publisher %4.2f%% in %v",
			r.Mode, 100*cores(r.FFmpegCPU, r.Window), 100*cores(r.ServerCPU, r.Window), 100*cores(r.PublisherCPU, r.Window), r.Window.Round(time.Second))
	} else {
		fmt.Fprintf(&b, "%-10s ffmpeg %5.1f%% of a core (%s per frame), shopcast %5.2f%% (%s per frame), publisher %4.2f%%; %d frames a rung in %v (%.1f fps)",
			r.Mode, 100*cores(r.FFmpegCPU, r.Window), perFrame(r.FFmpegCPU), 100*cores(r.ServerCPU, r.Window), perFrame(r.ServerCPU),
			100*cores(r.PublisherCPU, r.Window), r.Frames, r.Window.Round(time.Second), float64(r.Frames)/r.Window.Seconds())
	}
	switch r.Mode {
	case "integrated":
		fmt.Fprintf(&b, "; restarts %d, dropped %d", r.Restarts, r.Dropped)
		for _, rung := range LadderRungs {
			fmt.Fprintf(&b, "\n    %s part delay over the source (blocking reloads, next window): %s", rung.Name, r.Delay[rung.Name])
		}
	case "posters":
		per := time.Duration(0)
		if r.Posters > 0 {
			per = r.FFmpegCPU / time.Duration(r.Posters)
		}
		fmt.Fprintf(&b, "; %d posters, %s of ffmpeg CPU each", r.Posters, ms(per))
	}
	fmt.Fprintf(&b, "\n    load %s", r.Load)
	return b.String()
}

// Ladder measures the two-rung ladder from a 720p30 publisher both ways:
// the server's own ladder, then the same encoding by hand (an ffmpeg that
// reads the source's media playlist from the origin and publishes each rung
// back over RTMP as a stream of its own, the way to get a ladder without
// the ladder config).
func Ladder(ctx context.Context, cfg LadderConfig) ([]LadderResult, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 6 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 2
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("the ladder benchmark needs ffmpeg")
	}
	var out []LadderResult
	for range cfg.Rounds {
		for _, mode := range []string{"integrated", "by hand"} {
			r, err := ladderOne(ctx, ffmpeg, mode, cfg)
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}
	r, err := ladderOne(ctx, ffmpeg, "posters", cfg)
	return append(out, r), err
}

// ladderHandArgs is the by-hand ffmpeg: the ladder's own encoding
// (ladder's command line, the same flags per rung) from the origin's media
// playlist, the source's audio copied into each rung, each published as a
// stream of its own.
func ladderHandArgs(input, publish string) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-i", input}
	var graph strings.Builder
	fmt.Fprintf(&graph, "[0:v]split=%d", len(LadderRungs))
	for i := range LadderRungs {
		fmt.Fprintf(&graph, "[s%d]", i)
	}
	for i, r := range LadderRungs {
		fmt.Fprintf(&graph, ";[s%d]scale=-2:%d[v%d]", i, r.Height, i)
	}
	args = append(args, "-filter_complex", graph.String())
	for i, r := range LadderRungs {
		args = append(args, "-map", "[v"+strconv.Itoa(i)+"]", "-map", "0:a",
			"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-b:v", r.VideoBitrate, "-maxrate", r.VideoBitrate, "-bufsize", r.VideoBitrate,
			"-force_key_frames", "source", "-g", "100000", "-sc_threshold", "0", "-bf", "0",
			"-c:a", "copy", "-f", "flv", publish+"_"+r.Name)
	}
	return args
}

func ladderOne(ctx context.Context, ffmpeg, mode string, cfg LadderConfig) (LadderResult, error) {
	res := LadderResult{Mode: mode, Delay: map[string]Dist{}}
	integrated, posters := mode == "integrated", mode == "posters"
	srv, err := startServerConfig(func(c *shopcast.Config) {
		c.Record = false
		c.PosterInterval = 0
		switch {
		case integrated:
			c.Ladder = LadderRungs
		case posters:
			c.PosterInterval = 5 * time.Second
		}
	})
	if err != nil {
		return res, err
	}
	defer srv.close()
	base := srv.baseURL()

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	pub, err := startFFmpeg(pctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
		"-i", cfg.FLV, "-c", "copy", "-f", "flv", srv.publishURL())
	if err != nil {
		return res, err
	}
	defer pub.stop()
	c := newHTTPClient(8)
	if err := waitReady(ctx, c, base); err != nil {
		return res, fmt.Errorf("%w (publisher: %s)", err, pub.stderr.String())
	}
	var hand *ffmpegProc
	if mode == "by hand" {
		if hand, err = startFFmpeg(pctx, ffmpeg, ladderHandArgs(base+hlsname.Media, srv.publishURL())...); err != nil {
			return res, err
		}
		defer hand.stop()
	}
	if !sleep(ctx, cfg.Settle) {
		return res, ctx.Err()
	}
	ffmpegPID := func() int {
		if hand != nil {
			return hand.cmd.Process.Pid
		}
		return srv.lad.PID(streamName)
	}
	pid := 0
	if !posters {
		if pid = ffmpegPID(); pid == 0 {
			return res, errors.New("no ladder ffmpeg runs")
		}
	}
	rungFrames := func() int64 {
		if integrated {
			return int64(srv.lad.Stats().Rungs[0].Frames)
		}
		for _, st := range srv.pkg.Stats().Streams {
			if st.Name == streamName+"_"+LadderRungs[0].Name {
				return st.Video.Frames
			}
		}
		return 0
	}
	startFrames := rungFrames()
	startLad := srv.lad.Stats()
	startSrv, startPub := cpuTime(), procCPU(pub.cmd.Process.Pid)
	startFF := time.Duration(0)
	if pid != 0 {
		startFF = procCPU(pid)
	}
	began := time.Now()
	if !sleep(ctx, cfg.Duration) {
		return res, ctx.Err()
	}
	res.Window = time.Since(began)
	res.ServerCPU = cpuTime() - startSrv
	endLad := srv.lad.Stats()
	if posters {
		res.FFmpegCPU = endLad.PosterCPU - startLad.PosterCPU
		res.Posters = endLad.Posters - startLad.Posters
	} else {
		if ffmpegPID() != pid {
			return res, errors.New("the ladder ffmpeg was restarted during the window")
		}
		res.FFmpegCPU = procCPU(pid) - startFF
		res.Frames = rungFrames() - startFrames
	}
	res.PublisherCPU = procCPU(pub.cmd.Process.Pid) - startPub
	res.Restarts, res.Dropped = endLad.Restarts-startLad.Restarts, endLad.Dropped-startLad.Dropped
	res.Load = LoadAvg()
	if integrated {
		// The delay in a window of its own: the followers run in this
		// process and would count as the server's CPU.
		fctx, stopFollow := context.WithCancel(ctx)
		follow := followParts(fctx, c, base, append([]string{""}, rungNames()...))
		ok := sleep(ctx, cfg.Duration)
		stopFollow()
		follow.wait()
		if !ok {
			return res, ctx.Err()
		}
		for _, r := range rungNames() {
			res.Delay[r] = follow.delay(r)
		}
	}
	if hand != nil {
		// The rungs really came back as streams.
		for _, r := range rungNames() {
			var buf []byte
			if err := get(ctx, c, strings.TrimSuffix(base, streamName+"/")+streamName+"_"+r+"/"+hlsname.Media, &buf); err != nil {
				return res, fmt.Errorf("by hand, rung %s: %w (ffmpeg: %s)", r, err, hand.stderr.String())
			}
		}
	}
	return res, nil
}

func rungNames() []string {
	var out []string
	for _, r := range LadderRungs {
		out = append(out, r.Name)
	}
	return out
}

// ffmpegProc is an ffmpeg of the benchmark.
type ffmpegProc struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
	done   chan struct{}
}

func startFFmpeg(ctx context.Context, ffmpeg string, args ...string) (*ffmpegProc, error) {
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	p := &ffmpegProc{cmd: cmd, stderr: &strings.Builder{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: p.stderr}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *ffmpegProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 4096 {
		return len(b), nil
	}
	return l.w.Write(b)
}

// procCPU is a process's user and system time from /proc/PID/stat, 0 when
// it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields after its ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// partClocks notes when each rendition's playlist first lists each part.
type partClocks struct {
	mu    sync.Mutex
	first map[string]map[int64]time.Time
	wg    sync.WaitGroup
}

// followParts follows each rendition's media playlist with blocking
// reloads (RFC 8216bis 6.2.5.2), noting when each part number first
// appears in it.
func followParts(ctx context.Context, c *http.Client, base string, variants []string) *partClocks {
	pc := &partClocks{first: map[string]map[int64]time.Time{}}
	for _, v := range variants {
		pc.first[v] = map[int64]time.Time{}
		url := base + hlsname.Media
		if v != "" {
			url = base + v + "." + hlsname.Media
		}
		pc.wg.Go(func() { pc.follow(ctx, c, v, url) })
	}
	return pc
}

func (pc *partClocks) follow(ctx context.Context, c *http.Client, v, url string) {
	var buf []byte
	query := ""
	for ctx.Err() == nil {
		if err := get(ctx, c, url+query, &buf); err != nil {
			if !sleep(ctx, 50*time.Millisecond) {
				return
			}
			query = ""
			continue
		}
		at := time.Now()
		pl, err := m3u8.Unmarshal(buf)
		m, ok := pl.(*m3u8.Media)
		if err != nil || !ok {
			query = ""
			continue
		}
		pc.mu.Lock()
		note := func(p *m3u8.MediaPart) {
			n, err := hlsname.Parse(p.URI)
			if err == nil && n.Kind == hlsname.KindPart && !p.Gap {
				if _, seen := pc.first[v][n.N]; !seen {
					pc.first[v][n.N] = at
				}
			}
		}
		for _, s := range m.Segments {
			for _, p := range s.Parts {
				note(p)
			}
		}
		for _, p := range m.Parts {
			note(p)
		}
		pc.mu.Unlock()
		// The next part: of the open segment, or the first of the next.
		msn := m.MediaSequence + len(m.Segments)
		query = fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", msn, len(m.Parts))
	}
}

func (pc *partClocks) wait() { pc.wg.Wait() }

// delay is how much later than the source's each part of rung v was
// listed, over the parts both listed while followed (the first ones, seen
// in the first playlist read, are left out: they were not new).
func (pc *partClocks) delay(v string) Dist {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var first time.Time
	for _, at := range pc.first[""] {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	var ds []time.Duration
	for n, at := range pc.first[v] {
		src, ok := pc.first[""][n]
		if !ok || !src.After(first) {
			continue
		}
		ds = append(ds, at.Sub(src))
	}
	return dist(ds)
}

package ladder

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/packager"
)

var (
	// errSourceGone ends a ladder for good: its source has closed or been
	// superseded.
	errSourceGone = errors.New("the source is gone")
	// errBehind ends an ffmpeg that could not keep up with the source.
	errBehind = errors.New("ffmpeg fell behind the source: its queue was full")
)

// runner runs the ladder of one source: one ffmpeg at a time, restarted
// with backoff, fed from a bounded queue.
type runner struct {
	s     *source
	l     *Ladder
	rungs []Rung // the configured rungs below the source's height

	queue  chan *frame
	behind chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	clock tsClock

	mu  sync.Mutex
	pid int // of the running ffmpeg, 0 between runs
}

func newRunner(s *source) *runner {
	r := &runner{
		s:      s,
		l:      s.l,
		queue:  make(chan *frame, s.l.cfg.QueueFrames),
		behind: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	for _, rung := range s.l.cfg.Rungs {
		if s.codec.height == 0 || rung.Height < s.codec.height {
			r.rungs = append(r.rungs, rung)
		}
	}
	r.ctx, r.cancel = context.WithCancel(s.l.ctx)
	return r
}

// offer queues a frame for ffmpeg without ever waiting.
func (r *runner) offer(f *frame) {
	if r.ctx.Err() != nil {
		return // stopped
	}
	select {
	case r.queue <- f:
	default:
		r.l.stats.dropped.Add(1)
		select {
		case r.behind <- struct{}{}:
		default:
		}
	}
}

// stop ends the ladder and waits until its ffmpeg is gone.
func (r *runner) stop() {
	r.cancel()
	<-r.done
}

// run starts ffmpeg and starts it again when it dies, until the source
// ends. An ffmpeg that fails before its first output at the first start
// leaves the stream without a ladder: it would fail the same way again.
func (r *runner) run() {
	defer close(r.done)
	defer r.l.released()
	log := r.l.log.With("stream", r.s.info.Name)
	if len(r.rungs) == 0 {
		log.Info("no ladder for this stream: every rung is as high as the source or higher", "height", r.s.codec.height)
		return
	}
	wait := r.l.cfg.RestartMin
	for first := true; ; first = false {
		began := time.Now()
		produced, stderr, err := r.runOnce()
		if r.ctx.Err() != nil || errors.Is(err, errSourceGone) {
			return
		}
		if first && !produced && !errors.Is(err, errBehind) {
			r.l.stats.startFailures.Add(1)
			log.Error("ladder ffmpeg failed at start: the stream goes on without a ladder",
				"err", err, "ffmpeg", r.l.ffmpeg, "ffmpeg_output", lastLines(stderr, 3))
			return
		}
		if time.Since(began) >= r.l.cfg.RestartMax {
			wait = r.l.cfg.RestartMin
		}
		log.Warn("ladder ffmpeg ended; starting it again", "err", err, "in", wait, "ffmpeg_output", lastLines(stderr, 3))
		if !r.pause(wait) {
			return
		}
		r.l.stats.restarts.Add(1)
		wait = min(2*wait, r.l.cfg.RestartMax)
	}
}

// pause waits d, dropping the frames that arrive meanwhile; false when the
// ladder was stopped.
func (r *runner) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-r.queue:
			r.l.stats.dropped.Add(1)
		}
	}
}

// runOnce runs one ffmpeg until it ends, falls behind or the ladder stops.
// produced tells whether any rung came back.
func (r *runner) runOnce() (produced bool, stderr string, err error) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	select { // a stale signal of the previous run
	case <-r.behind:
	default:
	}
	p, err := startProcess(ctx, r.l.ffmpeg, ladderArgs(r.rungs, r.l.cfg.Preset), len(r.rungs), false)
	if err != nil {
		return false, "", err
	}
	r.l.stats.running.Add(1)
	r.setPID(p.pid())
	defer func() {
		cancel()
		_ = p.wait()
		r.setPID(0)
		r.l.stats.running.Add(-1)
		stderr = p.stderr.String()
	}()

	var out atomic.Bool
	errc := make(chan error, len(r.rungs)+1)
	var wg sync.WaitGroup
	order := &decodeOrder{}
	for i, rung := range r.rungs {
		wg.Go(func() { errc <- r.readRung(rung, p.outs[i], order, &out) })
	}
	wg.Go(func() { errc <- r.feed(ctx, p.stdin, order) })
	select {
	case err = <-errc:
	case <-r.behind:
		err = errBehind
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	waitErr := p.wait()
	wg.Wait()
	if err == nil || errors.Is(err, io.EOF) {
		err = fmt.Errorf("ffmpeg exited: %v", waitErr)
	}
	return out.Load(), stderr, err
}

func (r *runner) setPID(pid int) {
	r.mu.Lock()
	r.pid = pid
	r.mu.Unlock()
}

// PID is the process id of the stream's ladder ffmpeg, 0 when none runs.
// Benchmarks read its CPU time; tests kill it.
func (l *Ladder) PID(stream string) int {
	l.mu.Lock()
	src := l.current[stream]
	l.mu.Unlock()
	if src == nil || src.lad == nil {
		return 0
	}
	src.lad.mu.Lock()
	defer src.lad.mu.Unlock()
	return src.lad.pid
}

// feed writes the queued frames to ffmpeg as MPEG-TS, from the next
// keyframe on.
func (r *runner) feed(ctx context.Context, w io.Writer, order *decodeOrder) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var codec tscodecs.Codec = &tscodecs.H264{}
	if r.s.codec.h265 {
		codec = &tscodecs.H265{}
	}
	track := &mpegts.Track{PID: 256, Codec: codec}
	tw := &mpegts.Writer{W: bw, Tracks: []*mpegts.Track{track}}
	if err := tw.Initialize(); err != nil {
		return err
	}
	started := false
	for {
		var f *frame
		select {
		case <-ctx.Done():
			return nil
		case f = <-r.queue:
		}
		if !started && !f.key {
			r.l.stats.dropped.Add(1)
			continue
		}
		started = true
		order.fed(f.pts, f.dts)
		pts, dts := r.clock.in(f.pts), r.clock.in(f.dts)
		var err error
		if r.s.codec.h265 {
			err = tw.WriteH265(track, pts, dts, f.au)
		} else {
			err = tw.WriteH264(track, pts, dts, f.au)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return fmt.Errorf("writing to ffmpeg: %w", err)
		}
	}
}

// readRung reads one rung's MPEG-TS and publishes it as a variant of the
// stream from its first keyframe on. The variant ends with the ffmpeg.
func (r *runner) readRung(rung Rung, rd io.Reader, order *decodeOrder, produced *atomic.Bool) error {
	tr := &mpegts.Reader{R: bufio.NewReaderSize(rd, 64<<10)}
	if err := tr.Initialize(); err != nil {
		return fmt.Errorf("rung %s: %w", rung.Name, err)
	}
	var video *mpegts.Track
	for _, t := range tr.Tracks() {
		if _, ok := t.Codec.(*tscodecs.H264); ok {
			video = t
		}
	}
	if video == nil {
		return fmt.Errorf("rung %s: no H.264 track in ffmpeg's output", rung.Name)
	}
	track := &ingest.Track{ID: 1, ClockRate: 90000}
	counts := r.l.stats.rungs[rung.Name]
	var pub ingest.Publication
	defer func() {
		if pub != nil {
			pub.Close()
		}
	}()
	tr.OnDataH264(video, func(pts, dts int64, au [][]byte) error {
		if pub == nil {
			if !h264.IsRandomAccess(au) {
				return nil
			}
			sps, pps := paramSets(au)
			if sps == nil || pps == nil {
				return fmt.Errorf("rung %s: a keyframe without SPS and PPS", rung.Name)
			}
			track.Codec = &codecs.H264{SPS: sps, PPS: pps}
			var err error
			pub, err = r.l.next.Publish(ingest.PublishInfo{
				Name: r.s.info.Name, Proto: "ladder", Remote: "ffmpeg", Tracks: []*ingest.Track{track}, Variant: rung.Name,
			})
			if err != nil {
				pub = nil
				if errors.Is(err, packager.ErrNoSource) {
					return fmt.Errorf("%w: %w", errSourceGone, err)
				}
				return fmt.Errorf("rung %s: publish: %w", rung.Name, err)
			}
			produced.Store(true)
		}
		au = pictureOnly(au)
		if len(au) == 0 {
			return nil
		}
		n := 0
		for _, nalu := range au {
			n += len(nalu)
		}
		counts.frames.Add(1)
		counts.bytes.Add(uint64(n))
		u := &ingest.Unit{Track: track, PTS: r.clock.out(pts), DTS: r.clock.out(dts), AU: au}
		if d, ok := order.dts(u.PTS); ok {
			u.DTS = d
		}
		err := pub.WriteUnit(u)
		switch {
		case errors.Is(err, packager.ErrSourceGone), errors.Is(err, packager.ErrSuperseded):
			return fmt.Errorf("%w: %w", errSourceGone, err)
		case err != nil:
			return fmt.Errorf("rung %s: %w", rung.Name, err)
		}
		return nil
	})
	for {
		if err := tr.Read(); err != nil {
			return err
		}
	}
}

// paramSets returns the SPS and PPS of an access unit.
func paramSets(au [][]byte) (sps, pps []byte) {
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		}
	}
	return sps, pps
}

// pictureOnly drops the parameter sets and delimiters from an access unit:
// the parameter sets are in the variant's init segment (avc1).
func pictureOnly(au [][]byte) [][]byte {
	out := au[:0]
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAccessUnitDelimiter:
		default:
			out = append(out, n)
		}
	}
	return out
}

// ladderArgs is the ffmpeg command line of a ladder: MPEG-TS in on stdin,
// one MPEG-TS out per rung on file descriptors 3, 4, ...
//
// Why each flag is there:
//   - -copyts, -fps_mode passthrough, -enc_time_base -1 and
//     -mpegts_copyts 1: every output frame keeps its source frame's
//     timestamp (the encoder would otherwise round them to 1/frame rate,
//     and the MPEG-TS muxer shift them by its mux delay);
//   - -force_key_frames source: a keyframe exactly where the source has
//     one, and -g/-sc_threshold so there are none elsewhere: part and
//     segment boundaries then fall at the same media times in every
//     variant;
//   - -tune zerolatency, -bf 0: no lookahead and no reordering, so a
//     frame comes back a few frame times after it went in;
//   - -maxrate and -bufsize of the bitrate (a one-second VBV buffer): no
//     part much larger than its share of the bitrate, keyframes included,
//     since a low-latency player has about a second of buffer, and a rung
//     is there for the viewers whose network has no more to spare;
//   - -threads 1 on the input: frame-threaded decoding holds a frame per
//     thread before it gives one out (about 70 ms more delay measured);
//     one 720p30 decode fits in one thread;
//   - -probesize/-analyzeduration: start on the first keyframe instead
//     of reading seconds of input first (not -fflags nobuffer: it drops
//     the frames read while probing); -flush_packets: write each frame as
//     soon as it is encoded.
func ladderArgs(rungs []Rung, preset string) []string {
	args := []string{
		"-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
		"-probesize", "65536", "-analyzeduration", "0", "-threads", "1",
		"-copyts", "-f", "mpegts", "-i", "pipe:0",
	}
	var graph strings.Builder
	fmt.Fprintf(&graph, "[0:v]split=%d", len(rungs))
	for i := range rungs {
		fmt.Fprintf(&graph, "[s%d]", i)
	}
	for i, rung := range rungs {
		fmt.Fprintf(&graph, ";[s%d]scale=-2:%d[v%d]", i, rung.Height, i)
	}
	args = append(args, "-filter_complex", graph.String())
	for i, rung := range rungs {
		args = append(args,
			"-map", "[v"+strconv.Itoa(i)+"]",
			"-c:v", "libx264", "-preset", preset, "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-b:v", rung.VideoBitrate, "-maxrate", rung.VideoBitrate, "-bufsize", rung.VideoBitrate,
			"-force_key_frames", "source", "-g", "100000", "-sc_threshold", "0", "-bf", "0",
			"-fps_mode", "passthrough", "-enc_time_base", "-1",
			"-flush_packets", "1", "-mpegts_copyts", "1",
			"-f", "mpegts", "pipe:"+strconv.Itoa(3+i),
		)
	}
	return args
}

// lastLines returns the last n lines of s, for a log line.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// tsClock maps the source's timestamps to MPEG-TS's 33-bit 90 kHz clock
// and back. Going in, an offset keeps them clear of zero (the TS writer's
// PCR runs ahead of the first DTS); coming back, each timestamp is
// unwrapped against the last one fed and, when it is one of the recent
// source timestamps (it is, for every frame: ffmpeg copies them), mapped
// back to exactly that source timestamp, not to its 90 kHz rounding.
type tsClock struct {
	mu     sync.Mutex
	last   int64 // unwrapped 90 kHz value of the last timestamp fed
	fed    bool
	recent [512]struct {
		ticks int64
		d     time.Duration
	}
	next int
}

const (
	tsMask   = 1<<33 - 1
	tsOffset = 10 * 90000 // 10 s
)

// ticks is d on the 90 kHz clock, rounded; in two steps so that no
// product overflows, however long the stream.
func ticks(d time.Duration) int64 {
	return int64(d/time.Second)*90000 + (int64(d%time.Second)*90000+int64(time.Second)/2)/int64(time.Second)
}

// in returns the 33-bit value that stands for d in ffmpeg's input.
func (c *tsClock) in(d time.Duration) int64 {
	t := ticks(d) + tsOffset
	c.mu.Lock()
	c.last, c.fed = t, true
	c.recent[c.next].ticks, c.recent[c.next].d = t, d
	c.next = (c.next + 1) % len(c.recent)
	c.mu.Unlock()
	return t & tsMask
}

// out returns the source timestamp of a 33-bit value of ffmpeg's output.
func (c *tsClock) out(raw int64) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	diff := (raw - c.last) & tsMask
	if diff > tsMask/2 {
		diff -= tsMask + 1
	}
	t := c.last + diff
	for _, r := range c.recent {
		if r.ticks == t && (r.d != 0 || t == tsOffset) {
			return r.d
		}
	}
	return time.Duration(t-tsOffset) * time.Second / 90000
}

// decodeOrder gives a rung's frames the source's decode times. A source
// with B-frames decodes ahead of presentation: its keyframe's DTS is a
// frame or two before its PTS, and the packager cuts parts and segments at
// the source's decode times. A rung has no B-frames, so ffmpeg gives its
// frames DTS = PTS, and its keyframe would fall after the start of the
// source segment it belongs to. The k-th rung frame in presentation order
// takes the k-th source DTS instead: the same count of frames, DTS still
// rising and never after PTS (the k-th decode time of a stream is at most
// its k-th presentation time), and the keyframe's DTS is the source
// keyframe's, its GOP being closed.
type decodeOrder struct {
	mu   sync.Mutex
	pts  []time.Duration // fed presentation times, sorted
	dtss []time.Duration // fed decode times, in decode order
}

// fed notes a frame written to ffmpeg.
func (o *decodeOrder) fed(pts, dts time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := len(o.pts)
	for i > 0 && o.pts[i-1] > pts {
		i--
	}
	o.pts = slices.Insert(o.pts, i, pts)
	o.dtss = append(o.dtss, dts)
	// Keep a few seconds: ffmpeg is never that far behind (the queue).
	if len(o.pts) > 2048 {
		o.pts = slices.Delete(o.pts, 0, 1024)
		o.dtss = slices.Delete(o.dtss, 0, 1024)
	}
}

// dts is the decode time of the rung frame presented at pts.
func (o *decodeOrder) dts(pts time.Duration) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i, found := slices.BinarySearch(o.pts, pts)
	if !found || i >= len(o.dtss) {
		return 0, false
	}
	return min(o.dtss[i], pts), true
}

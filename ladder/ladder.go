// Package ladder gives single-rendition streams an adaptive bitrate ladder
// and every stream a poster image, with ffmpeg doing the pictures.
//
// A Ladder sits between the ingest and the packager as an ingest.Sink. A
// source publication passes straight through to the next Sink; beside it,
// its video access units are copied into a bounded queue (never waiting:
// when ffmpeg falls behind, units are dropped and ffmpeg restarted) and fed
// as MPEG-TS to one ffmpeg process per stream. ffmpeg scales and encodes
// each rung with libx264, keyframes forced where the source has them and
// timestamps copied through, and writes each rung as MPEG-TS to a pipe of
// its own. Each rung comes back as a variant publication of the stream
// (ingest.PublishInfo.Variant) into the next Sink, on the source's clock,
// so that the packager cuts part N of every variant at the same media time.
//
// Posters: every PosterInterval one keyframe of the source is handed to a
// short ffmpeg that decodes that one picture and writes a JPEG (see
// poster.go). It costs about 0.1 s of CPU a poster, mostly ffmpeg's start;
// a long-lived ffmpeg per stream would cost less CPU but about 50 MB of
// memory per stream, idle.
package ladder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// Rung is one rendition the ladder makes from the source.
type Rung struct {
	// Name is the variant name, e.g. "480p" (^[a-z0-9][a-z0-9_-]{0,15}$).
	Name string `json:"name"`
	// Height is the picture height; the width keeps the source's aspect
	// ratio (rounded to an even number). A rung as high as the source or
	// higher is skipped for that stream.
	Height int `json:"height"`
	// VideoBitrate is libx264's target bitrate in ffmpeg's notation
	// ("1200k", "2M"); it is also the rung's maxrate, with a buffer of one
	// second of it.
	VideoBitrate string `json:"video_bitrate"`
}

// variantName is the packager's rule for variant names.
var variantName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,15}$`)

// bitrate is ffmpeg's notation for a bitrate: digits, an optional
// fraction and an optional k or M.
var bitrate = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[kKM]?$`)

// ValidateRungs checks a ladder: names valid and distinct, heights even
// and positive, bitrates in ffmpeg's notation. The errors name the rung.
func ValidateRungs(rungs []Rung) error {
	var errs []error
	seen := map[string]bool{}
	for i, r := range rungs {
		switch {
		case !variantName.MatchString(r.Name):
			errs = append(errs, fmt.Errorf("rung %d: name %q does not match %s", i, r.Name, variantName))
		case seen[r.Name]:
			errs = append(errs, fmt.Errorf("rung %d: name %q is used twice", i, r.Name))
		}
		seen[r.Name] = true
		if r.Height < 16 || r.Height > 4320 || r.Height%2 != 0 {
			errs = append(errs, fmt.Errorf("rung %q: height %d is not an even number between 16 and 4320", r.Name, r.Height))
		}
		if !bitrate.MatchString(r.VideoBitrate) {
			errs = append(errs, fmt.Errorf("rung %q: video_bitrate %q is not a bitrate such as 1200k", r.Name, r.VideoBitrate))
		}
	}
	return errors.Join(errs...)
}

// bitsPerSecond reads ffmpeg's bitrate notation, for the log.
func bitsPerSecond(s string) int64 {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, s[:len(s)-1]
	}
	f, _ := strconv.ParseFloat(s, 64)
	return int64(f * mult)
}

// Config is a Ladder's settings.
type Config struct {
	// Rungs are the renditions made for every stream whose source is
	// H.264 or H.265. It defaults to none: no ladder, posters only.
	Rungs []Rung
	// FFmpegPath is the ffmpeg binary. It defaults to "ffmpeg", looked up
	// on PATH.
	FFmpegPath string
	// Preset is libx264's preset for the rungs. It defaults to "veryfast".
	Preset string
	// QueueFrames is how many source frames may wait for ffmpeg; when the
	// queue is full, ffmpeg has fallen behind: frames are dropped and
	// ffmpeg restarted. It defaults to 60.
	QueueFrames int
	// RestartMin and RestartMax bound the wait before ffmpeg is restarted
	// after it died; the wait doubles from RestartMin with each death that
	// follows a run shorter than RestartMax. They default to 1s and 30s.
	RestartMin, RestartMax time.Duration
	// MaxStreams caps the streams that get a ladder at once (each ffmpeg
	// takes a good share of a core); the others are served without. It
	// defaults to 4.
	MaxStreams int
	// PosterInterval is how often a stream's poster is made again; 0 makes
	// none (the zero Config makes none; the server's default is 10s).
	PosterInterval time.Duration
	// PosterConcurrency caps the poster ffmpegs running at once across all
	// streams; a stream whose turn finds them busy waits for its next
	// keyframe. It defaults to 2.
	PosterConcurrency int
	// Logger receives the ladder's lines. It defaults to discarding them.
	Logger *slog.Logger
}

// Defaults of the Config fields.
const (
	defaultPreset            = "veryfast"
	defaultQueueFrames       = 60
	defaultRestartMin        = time.Second
	defaultRestartMax        = 30 * time.Second
	defaultMaxStreams        = 4
	defaultPosterConcurrency = 2
)

// Ladder is an ingest.Sink in front of the next Sink (the packager). Build
// it with New; Close stops every ffmpeg it runs.
type Ladder struct {
	cfg  Config
	next ingest.Sink
	log  *slog.Logger
	// ffmpeg is the resolved binary; "" when it was not found (the ladder
	// and the posters are then off).
	ffmpeg string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	current map[string]*source // the live source publication of each stream
	ladders int                // sources with a running ladder
	posters map[string]*Poster

	posterSlots chan struct{}

	stats counters
}

// New returns a Ladder that publishes into next. A missing ffmpeg is told
// in one log line; the streams are then passed through untouched.
func New(cfg Config, next ingest.Sink) *Ladder {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Preset == "" {
		cfg.Preset = defaultPreset
	}
	if cfg.QueueFrames <= 0 {
		cfg.QueueFrames = defaultQueueFrames
	}
	if cfg.RestartMin <= 0 {
		cfg.RestartMin = defaultRestartMin
	}
	if cfg.RestartMax < cfg.RestartMin {
		cfg.RestartMax = max(defaultRestartMax, cfg.RestartMin)
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = defaultMaxStreams
	}
	if cfg.PosterConcurrency <= 0 {
		cfg.PosterConcurrency = defaultPosterConcurrency
	}
	l := &Ladder{
		cfg:         cfg,
		next:        next,
		log:         cfg.Logger.With("component", "ladder"),
		current:     map[string]*source{},
		posters:     map[string]*Poster{},
		posterSlots: make(chan struct{}, cfg.PosterConcurrency),
	}
	l.stats.init(cfg.Rungs)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if len(cfg.Rungs) == 0 && cfg.PosterInterval <= 0 {
		return l // nothing to run ffmpeg for
	}
	bin := cfg.FFmpegPath
	if bin == "" {
		bin = "ffmpeg"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		l.log.Error("ffmpeg not found: streams are served without a ladder and without posters",
			"ffmpeg_path", bin, "err", err)
		return l
	}
	l.ffmpeg = path
	if len(cfg.Rungs) > 0 {
		var names []string
		for _, r := range cfg.Rungs {
			names = append(names, fmt.Sprintf("%s (%dp, %d kbit/s)", r.Name, r.Height, bitsPerSecond(r.VideoBitrate)/1000))
		}
		l.log.Info("ladder on", "ffmpeg", path, "rungs", strings.Join(names, ", "), "preset", cfg.Preset)
	}
	return l
}

// Publish implements ingest.Sink. A source publication gets a ladder (when
// there are rungs and a place under MaxStreams) and posters; a variant
// publication from the publisher itself (OBS's multitrack Enhanced
// Broadcasting) passes through and ends the server's ladder of that
// stream: the publisher sends its own renditions.
func (l *Ladder) Publish(info ingest.PublishInfo) (ingest.Publication, error) {
	if info.Variant != "" {
		l.ownRenditions(info)
		return l.next.Publish(info)
	}
	pub, err := l.next.Publish(info)
	if err != nil || info.Variant != "" || l.ffmpeg == "" {
		return pub, err
	}
	src := newSource(l, info, pub)
	if src == nil {
		return pub, nil // no video ffmpeg can read
	}
	l.mu.Lock()
	old := l.current[info.Name]
	withLadder := len(l.cfg.Rungs) > 0 && l.ladders < l.cfg.MaxStreams && l.ctx.Err() == nil
	if withLadder {
		l.ladders++
		src.lad = newRunner(src) // before others can see src: lad never changes after
	}
	l.current[info.Name] = src
	l.mu.Unlock()
	if old != nil {
		old.stop() // superseded: its ffmpeg goes now, not at its next write
	}
	if withLadder {
		l.wg.Go(src.lad.run)
	} else if len(l.cfg.Rungs) > 0 {
		l.log.Warn("no ladder for this stream: ladder_max_streams reached", "stream", info.Name, "ladder_max_streams", l.cfg.MaxStreams)
	}
	return src, nil
}

// ownRenditions stops the server's ladder of a stream whose publisher
// publishes a variant itself, before that variant reaches the packager (its
// name may be one of the rungs').
func (l *Ladder) ownRenditions(info ingest.PublishInfo) {
	l.mu.Lock()
	src := l.current[info.Name]
	l.mu.Unlock()
	if src == nil || src.lad == nil || src.lad.ctx.Err() != nil {
		return
	}
	l.log.Info("the publisher sends its own renditions: no server ladder for this stream", "stream", info.Name, "variant", info.Variant)
	src.stop()
}

// released is called once by a source whose ladder has stopped.
func (l *Ladder) released() {
	l.mu.Lock()
	l.ladders--
	l.mu.Unlock()
}

// ended forgets src as its stream's source, and its poster with it, unless
// a newer source has taken its place.
func (l *Ladder) ended(src *source) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current[src.info.Name] == src {
		delete(l.current, src.info.Name)
		delete(l.posters, src.info.Name)
	}
}

// Close stops every ladder and poster ffmpeg and waits for them.
func (l *Ladder) Close() {
	l.cancel()
	l.wg.Wait()
}

// counters are the ladder's metrics.
type counters struct {
	restarts      atomic.Uint64
	startFailures atomic.Uint64
	dropped       atomic.Uint64
	running       atomic.Int64
	posters       atomic.Uint64
	posterErrors  atomic.Uint64
	posterSkipped atomic.Uint64
	posterCPU     atomic.Int64 // nanoseconds of user+system CPU
	rungs         map[string]*rungCounters
}

type rungCounters struct {
	frames, bytes atomic.Uint64
}

func (c *counters) init(rungs []Rung) {
	c.rungs = make(map[string]*rungCounters, len(rungs))
	for _, r := range rungs {
		c.rungs[r.Name] = &rungCounters{}
	}
}

// Stats are the ladder's counters since New.
type Stats struct {
	// Running is the number of ladder ffmpeg processes running now.
	Running int
	// Restarts counts ladder ffmpegs started again after they died or fell
	// behind; StartFailures the streams left without a ladder because
	// ffmpeg failed at its first start.
	Restarts, StartFailures uint64
	// Dropped counts source frames not given to ffmpeg: its queue was
	// full, or it was being restarted.
	Dropped uint64
	// Posters counts the posters made, PosterErrors the poster ffmpegs
	// that failed, PosterSkipped the turns skipped because
	// PosterConcurrency ffmpegs were busy.
	Posters, PosterErrors, PosterSkipped uint64
	// PosterCPU is the CPU time (user and system) the poster ffmpegs took.
	PosterCPU time.Duration
	// Rungs are the per-rung output counters, in configuration order.
	Rungs []RungStats
}

// RungStats counts what one rung gave back, over all streams.
type RungStats struct {
	Name   string
	Frames uint64
	Bytes  uint64
}

// Stats returns the counters.
func (l *Ladder) Stats() Stats {
	c := &l.stats
	s := Stats{
		Running:       int(c.running.Load()),
		Restarts:      c.restarts.Load(),
		StartFailures: c.startFailures.Load(),
		Dropped:       c.dropped.Load(),
		Posters:       c.posters.Load(),
		PosterErrors:  c.posterErrors.Load(),
		PosterSkipped: c.posterSkipped.Load(),
		PosterCPU:     time.Duration(c.posterCPU.Load()),
	}
	for _, r := range l.cfg.Rungs {
		rc := c.rungs[r.Name]
		s.Rungs = append(s.Rungs, RungStats{Name: r.Name, Frames: rc.frames.Load(), Bytes: rc.bytes.Load()})
	}
	return s
}

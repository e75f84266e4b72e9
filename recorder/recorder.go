// Package recorder keeps every live sale as a replay: it writes each
// stream's complete fMP4 segments and init sections to disk as the packager
// hands them over (packager.Hooks), byte for byte the ones live viewers
// got, with a playlist that grows segment by segment (EXT-X-PLAYLIST-TYPE
// EVENT, for rewinding while live) and is closed with EXT-X-ENDLIST when
// the stream ends (VOD). Every cue of the sale is in it as the
// EXT-X-DATERANGE the live playlist had; their emsg boxes are in the
// segments already.
//
// It never slows the live path: the hooks only queue (a bounded queue; a
// segment that does not fit is dropped and counted, and the recording gets
// a discontinuity there), and one goroutine writes. Low disk space or a
// write error pauses writing (logged, counted) while the live stream goes
// on.
//
// On disk, under Config.Dir:
//
//	NAME/ID/stream.m3u8    the media playlist, rewritten atomically per segment
//	NAME/ID/manifest.json  Manifest
//	NAME/ID/init{N}.mp4    init sections, seg{MSN}.m4s segments: the live files
//
// ID is the UTC program date-time of the first segment, 20261203T114501Z,
// so recordings sort by start. A segment is fsynced before the playlist
// that lists it is renamed into place, so after a crash the playlist lists
// only complete segments; Start closes such recordings (EXT-X-ENDLIST).
package recorder

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// Config sets up a Recorder. Zero fields take their defaults.
type Config struct {
	// Dir holds the recordings. Required.
	Dir string
	// Retention is how long a finished recording is kept, from its end;
	// 0 keeps recordings forever. It defaults to 0.
	Retention time.Duration
	// SweepInterval is how often recordings older than Retention are
	// removed. It defaults to 1h.
	SweepInterval time.Duration
	// MinFreeBytes pauses writing while the file system of Dir has less
	// free space than this. It defaults to 0 (no check).
	MinFreeBytes int64
	// QueueSegments is how many segments may wait to be written; more are
	// dropped (counted) rather than waited for. It defaults to 64.
	QueueSegments int
	// QueueEvents is how many event updates may wait. It defaults to 4096.
	QueueEvents int
	// RetryAfter is how long writing pauses after a write error. It
	// defaults to 10s.
	RetryAfter time.Duration
	// MaxClipBytes caps a product clip, which is built in memory. It
	// defaults to 268435456 (256 MiB).
	MaxClipBytes int
	// PlayAuth, when set, requires a valid play token (?token=) for the
	// stream on every recording file, as signed play URLs do live; the
	// playlists then carry it on their URIs. It defaults to nil: public.
	PlayAuth PlayVerifier
	// CORSOrigin is the Access-Control-Allow-Origin sent with recording
	// files. It defaults to "*".
	CORSOrigin string
	// Logger receives the recorder's logs. It defaults to discarding them.
	Logger *slog.Logger
	// FreeBytes reads the free space of Dir's file system. It defaults to
	// statfs; tests fake a full disk with it.
	FreeBytes func(dir string) (int64, error)
}

// Stats are the recorder's counters, for metrics.
type Stats struct {
	BytesWritten    int64 // segment and init bytes written
	Active          int64 // recordings being written
	WriteErrors     int64
	SegmentsDropped int64 // not recorded: queue full, paused or failed
	Paused          bool  // low disk space or a recent write error
}

// Recorder writes and serves recordings. New it, Start it, give
// packager.Config.Hooks its Hooks, and Close it after the packager.
type Recorder struct {
	cfg Config
	log *slog.Logger

	qmu      sync.Mutex
	queue    []item
	qsegs    int
	qevents  int
	gaps     map[key]bool // a segment was dropped: the next one queued follows a gap
	closed   bool
	wake     chan struct{}
	done     chan struct{}
	stopSwep chan struct{}
	sweepWG  sync.WaitGroup

	// mu guards active: the recordings being written, by NAME/ID, which
	// DELETE refuses and serving marks as growing.
	mu       sync.Mutex
	activeID map[string]bool

	bytes, writeErrs, dropped, activeN atomic.Int64
	paused                             atomic.Bool

	// Owned by the writer goroutine.
	recs        map[key]*recording
	pausedUntil time.Time
	pauseReason string
}

type key struct {
	stream  string
	session int64
}

type item struct {
	seg *packager.SegmentInfo
	gap bool // segments before this one were dropped
	ev  *packager.EventInfo
	end *packager.StreamEnd
}

// New returns a Recorder; Start makes it write.
func New(cfg Config) *Recorder {
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Hour
	}
	if cfg.QueueSegments <= 0 {
		cfg.QueueSegments = 64
	}
	if cfg.QueueEvents <= 0 {
		cfg.QueueEvents = 4096
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 10 * time.Second
	}
	if cfg.MaxClipBytes <= 0 {
		cfg.MaxClipBytes = 256 << 20
	}
	if cfg.CORSOrigin == "" {
		cfg.CORSOrigin = "*"
	}
	if cfg.FreeBytes == nil {
		cfg.FreeBytes = freeBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{
		cfg: cfg, log: log,
		gaps: map[key]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{}),
		stopSwep: make(chan struct{}), activeID: map[string]bool{}, recs: map[key]*recording{},
	}
}

// Start creates Dir, closes the recordings a crash left open, removes
// those past Retention, and starts the writer and the sweeper.
func (r *Recorder) Start() error {
	if r.cfg.Dir == "" {
		return errors.New("recorder: no directory")
	}
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	r.recover()
	r.sweep()
	go r.run()
	if r.cfg.Retention > 0 {
		r.sweepWG.Go(func() {
			t := time.NewTicker(r.cfg.SweepInterval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					r.sweep()
				case <-r.stopSwep:
					return
				}
			}
		})
	}
	return nil
}

// Close writes what is queued and stops. Recordings still open (their
// stream did not end) stay open, to be closed at the next Start, as after
// a crash. Close the packager first: its streams' ends close theirs.
func (r *Recorder) Close() {
	r.qmu.Lock()
	if r.closed {
		r.qmu.Unlock()
		return
	}
	r.closed = true
	r.qmu.Unlock()
	r.signal()
	<-r.done
	close(r.stopSwep)
	r.sweepWG.Wait()
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	return Stats{
		BytesWritten:    r.bytes.Load(),
		Active:          r.activeN.Load(),
		WriteErrors:     r.writeErrs.Load(),
		SegmentsDropped: r.dropped.Load(),
		Paused:          r.paused.Load(),
	}
}

// Hooks returns the packager hooks that feed the recorder. They only
// queue: they never wait for the disk.
func (r *Recorder) Hooks() packager.Hooks {
	return packager.Hooks{OnSegment: r.segment, OnEvent: r.event, OnStreamEnd: r.streamEnd}
}

func (r *Recorder) segment(si packager.SegmentInfo) {
	k := key{si.Stream, si.Session}
	r.qmu.Lock()
	if r.closed {
		r.qmu.Unlock()
		return
	}
	if r.qsegs >= r.cfg.QueueSegments {
		// The disk is behind: drop rather than hold the publisher. A
		// variant's segment dropped is a gap in its playlist only.
		if si.Variant == "" {
			r.gaps[k] = true
		}
		r.qmu.Unlock()
		r.dropped.Add(1)
		return
	}
	gap := false
	if si.Variant == "" {
		gap = r.gaps[k]
		delete(r.gaps, k)
	}
	r.queue = append(r.queue, item{seg: &si, gap: gap})
	r.qsegs++
	r.qmu.Unlock()
	r.signal()
}

func (r *Recorder) event(ei packager.EventInfo) {
	r.qmu.Lock()
	if r.closed || r.qevents >= r.cfg.QueueEvents {
		r.qmu.Unlock()
		if !r.closed {
			r.log.Warn("recorder queue full: cue update not recorded", "stream", ei.Stream, "id", ei.Event.ID)
		}
		return
	}
	r.queue = append(r.queue, item{ev: &ei})
	r.qevents++
	r.qmu.Unlock()
	r.signal()
}

func (r *Recorder) streamEnd(se packager.StreamEnd) {
	r.qmu.Lock()
	if r.closed {
		r.qmu.Unlock()
		return
	}
	// Never dropped: one per session.
	r.queue = append(r.queue, item{end: &se})
	r.qmu.Unlock()
	r.signal()
}

func (r *Recorder) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine: it takes the queue in order and writes.
func (r *Recorder) run() {
	defer close(r.done)
	for {
		<-r.wake
		r.qmu.Lock()
		batch, closed := r.queue, r.closed
		r.queue = nil
		r.qmu.Unlock()
		for i := range batch {
			it := &batch[i]
			switch {
			case it.seg != nil:
				// Counted out as its write starts: a segment is held by
				// the queue or by this write, never both.
				r.qmu.Lock()
				r.qsegs--
				r.qmu.Unlock()
				r.writeSegment(it.seg, it.gap)
			case it.ev != nil:
				r.qmu.Lock()
				r.qevents--
				r.qmu.Unlock()
				r.updateEvent(it.ev)
			case it.end != nil:
				r.endRecording(it.end)
			}
			batch[i] = item{} // let the segment's bytes go
		}
		if closed {
			r.qmu.Lock()
			left := len(r.queue)
			r.qmu.Unlock()
			if left == 0 {
				return
			}
			r.signal()
		}
	}
}

// setActive marks NAME/ID as being written, or not.
func (r *Recorder) setActive(path string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.activeID[path] = true
	} else {
		delete(r.activeID, path)
	}
	r.activeN.Store(int64(len(r.activeID)))
}

func (r *Recorder) isActive(path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.activeID[path]
}

// canWrite reports whether writing is paused (low disk, a recent error),
// logging and counting when that changes.
func (r *Recorder) canWrite() bool {
	now := time.Now()
	if now.Before(r.pausedUntil) {
		return false
	}
	if r.cfg.MinFreeBytes > 0 {
		free, err := r.cfg.FreeBytes(r.cfg.Dir)
		if err == nil && free < r.cfg.MinFreeBytes {
			r.pause("low disk space", "free_bytes", free, "record_min_free_bytes", r.cfg.MinFreeBytes)
			return false
		}
	}
	if r.paused.Swap(false) {
		r.log.Info("recording resumed", "after", r.pauseReason)
	}
	return true
}

func (r *Recorder) pause(reason string, args ...any) {
	if !r.paused.Swap(true) || r.pauseReason != reason {
		r.log.Warn("recording paused: "+reason+"; the live streams go on", args...)
	}
	r.pauseReason = reason
}

// failed pauses writing for RetryAfter after a write error.
func (r *Recorder) failed(stream string, err error) {
	r.writeErrs.Add(1)
	r.pausedUntil = time.Now().Add(r.cfg.RetryAfter)
	r.pause("write error", "stream", stream, "err", err, "retry_after", r.cfg.RetryAfter)
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// ViewersConfig sets up Viewers.
type ViewersConfig struct {
	// FLV is the file the publisher loops. It is required.
	FLV string
	// Viewers is the number of concurrent viewers. It defaults to 1000.
	Viewers int
	// Ramp is the time over which viewers join. It defaults to 5s.
	Ramp time.Duration
	// Settle is the wait after the ramp before memory is read and the
	// measurement starts. It defaults to 3s.
	Settle time.Duration
	// Duration is the measurement window. It defaults to 60s.
	Duration time.Duration
}

// ViewersResult is the outcome of Viewers.
type ViewersResult struct {
	Source  string
	Viewers int
	Window  time.Duration
	// CPU is the process CPU time (user+system) used in the window, and
	// Cores that divided by the window: server, publisher and viewers share
	// the process.
	CPU   time.Duration
	Cores float64
	// RSSBefore and RSSAfter are VmRSS (after a GC) with the stream running
	// and no viewer, then with every viewer connected; RSSPerViewer is the
	// growth divided by Viewers. Both ends of each connection are counted.
	RSSBefore, RSSAfter int64
	RSSPerViewer        int64
	Goroutines          int
	// Spread is, per part, the time between the first and the last viewer
	// holding it, over the parts every viewer got in the window.
	Spread Dist
	// Incomplete counts parts of the window that not every viewer got.
	Incomplete int
	// Parts and Bytes are the parts and bytes viewers received in the window.
	Parts int64
	Bytes int64
	// Errors counts failed viewer requests; SegmentEnds counts blocking
	// reloads released by a segment end before the next part existed.
	Errors, SegmentEnds int
	// FirstErr is the first error of the first viewer that had one.
	FirstErr error
}

func (r *ViewersResult) String() string {
	return fmt.Sprintf(`%d viewers (%s), %s window
  process CPU %s = %.2f cores of 2 (server + publisher + viewers in one process)
  RSS %.1f MiB -> %.1f MiB: %.1f KiB per viewer (both ends of each connection), %d goroutines
  first-to-last viewer spread per part: %s
  parts not received by every viewer %d; %.0f parts/s, %.1f MB/s to viewers
  viewer errors %d (first: %v), reloads released at segment end %d`,
		r.Viewers, r.Source, r.Window, r.CPU.Round(time.Millisecond), r.Cores,
		float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), float64(r.RSSPerViewer)/1024, r.Goroutines,
		r.Spread, r.Incomplete,
		float64(r.Parts)/r.Window.Seconds(), float64(r.Bytes)/r.Window.Seconds()/1e6,
		r.Errors, r.FirstErr, r.SegmentEnds)
}

// partTimes is when the first and the last viewer got one part.
type partTimes struct {
	first, last time.Time
	count       int
}

// Viewers publishes cfg.FLV to an in-process server and has cfg.Viewers
// LL-HLS viewers follow it part by part, each on its own keep-alive
// connection.
func Viewers(ctx context.Context, cfg ViewersConfig) (*ViewersResult, error) {
	if cfg.Viewers <= 0 {
		cfg.Viewers = 1000
	}
	if cfg.Ramp <= 0 {
		cfg.Ramp = 5 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 60 * time.Second
	}
	// Each viewer holds a client and a server socket; add headroom.
	if lim, err := RaiseFileLimit(uint64(2*cfg.Viewers + 256)); err != nil || lim < uint64(2*cfg.Viewers+64) {
		return nil, fmt.Errorf("file limit %d too low for %d viewers: %v", lim, cfg.Viewers, err)
	}
	src, err := loadSource(cfg.FLV)
	if err != nil {
		return nil, err
	}
	srv, err := startServer()
	if err != nil {
		return nil, err
	}
	defer srv.close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(ctx, srv.publishURL(), src, nil) }()

	client := newHTTPClient(cfg.Viewers)
	if err := waitReady(ctx, client, srv.baseURL()); err != nil {
		return nil, errors.Join(err, drainErr(pubErr))
	}
	if !srv.untilWindowFull(ctx, time.Now()) {
		return nil, errors.Join(ctx.Err(), drainErr(pubErr))
	}
	rssBefore, err := rss()
	if err != nil {
		return nil, err
	}

	var (
		mu        sync.Mutex
		measuring bool
		from      time.Time
		parts     = map[int64]*partTimes{}
		nParts    int64
		nBytes    int64
	)
	onPart := func(n int64, _ []byte, size int64, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if !measuring {
			return
		}
		p := parts[n]
		if p == nil {
			if at.Before(from) {
				return
			}
			p = &partTimes{first: at, last: at}
			parts[n] = p
		}
		p.first = minTime(p.first, at)
		p.last = maxTime(p.last, at)
		p.count++
		nParts++
		nBytes += size
	}

	viewers := make([]*viewer, cfg.Viewers)
	var wg sync.WaitGroup
	step := cfg.Ramp / time.Duration(cfg.Viewers)
	for i := range viewers {
		f, err := newViewerFetcher(client, srv.baseURL())
		if err != nil {
			return nil, err
		}
		v := &viewer{c: f, base: srv.baseURL()}
		viewers[i] = v
		wg.Go(func() { v.run(ctx, onPart) })
		if !sleep(ctx, step) {
			break
		}
	}
	if !sleep(ctx, cfg.Settle) {
		return nil, ctx.Err()
	}
	rssAfter, err := rss()
	if err != nil {
		return nil, err
	}
	goroutines := runtime.NumGoroutine()

	mu.Lock()
	measuring, from = true, time.Now()
	mu.Unlock()
	cpu0, t0 := cpuTime(), time.Now()
	sleep(ctx, cfg.Duration)
	cpu1, t1 := cpuTime(), time.Now()
	mu.Lock()
	measuring = false
	mu.Unlock()
	// Parts that opened near the end of the window still get their late
	// viewers: stop only after a few more part durations.
	sleep(ctx, time.Second)
	cancel()
	wg.Wait()
	if err := drainErr(pubErr); err != nil {
		return nil, err
	}

	res := &ViewersResult{
		Source: src.desc, Viewers: cfg.Viewers, Window: t1.Sub(t0),
		CPU: cpu1 - cpu0, RSSBefore: rssBefore, RSSAfter: rssAfter,
		RSSPerViewer: (rssAfter - rssBefore) / int64(cfg.Viewers), Goroutines: goroutines,
		Parts: nParts, Bytes: nBytes,
	}
	res.Cores = res.CPU.Seconds() / res.Window.Seconds()
	var spread []time.Duration
	for _, p := range parts {
		if p.count < cfg.Viewers {
			res.Incomplete++
			continue
		}
		spread = append(spread, p.last.Sub(p.first))
	}
	res.Spread = dist(spread)
	for _, v := range viewers {
		if v != nil {
			res.Errors += v.errors
			res.SegmentEnds += v.segmentEnds
			if res.FirstErr == nil {
				res.FirstErr = v.firstErr
			}
		}
	}
	return res, nil
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

package bench

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// IdleConfig sets up Idle.
type IdleConfig struct {
	// FLV is the file the publisher loops. It is required; the stream's
	// rate matters only through the media the packager holds, which grows
	// while memory is read, so a low-rate file is best.
	FLV string
	// Requests is the number of blocked playlist requests held. It
	// defaults to 10000.
	Requests int
	// Join is the time over which the requests are made. It defaults to
	// 5s.
	Join time.Duration
	// TargetDuration is the packager's target duration for this run. It
	// defaults to 10s, so that a request for the segment after next waits
	// 10 to 20 s, within the 30 s (3 target durations) after which the
	// packager answers 503.
	TargetDuration time.Duration
}

// IdleResult is the outcome of Idle.
type IdleResult struct {
	Source   string
	Requests int
	// Held is the packager's count of blocked requests when RSS was read.
	Held int64
	// Before is the server's VmRSS (after a GC) with the stream running and
	// no request, After with the requests held; PerRequest is the growth
	// divided by Held.
	Before, After, PerRequest int64
	// Stack and Heap are the growth of the Go runtime's StackInuse and
	// HeapInuse per held request: where the memory is.
	Stack, Heap           int64
	Goroutines            int
	LoadBefore, LoadAfter string
}

func (r *IdleResult) String() string {
	return fmt.Sprintf(`idle blocked playlist requests (%s)
  %d requests, %d held by the packager when measured, %d server goroutines
  server RSS %.1f MiB -> %.1f MiB: %.1f KiB per held request (server only; the requests come from the load process)
  of which goroutine stacks %.1f KiB, heap in use %.1f KiB per request
  load average %s -> %s`,
		r.Source, r.Requests, r.Held, r.Goroutines, mb(r.Before), mb(r.After), float64(r.PerRequest)/1024,
		float64(r.Stack)/1024, float64(r.Heap)/1024,
		r.LoadBefore, r.LoadAfter)
}

// Idle publishes cfg.FLV to an in-process server and has a load process
// (LoadRole) hold cfg.Requests blocking playlist requests for the segment
// after next, each on its own connection and re-issued when it returns;
// it reports the server's memory per held request.
func Idle(ctx context.Context, cfg IdleConfig) (*IdleResult, error) {
	if cfg.Requests <= 0 {
		cfg.Requests = 10000
	}
	if cfg.Join <= 0 {
		cfg.Join = 5 * time.Second
	}
	if cfg.TargetDuration <= 0 {
		cfg.TargetDuration = 10 * time.Second
	}
	if lim, err := RaiseFileLimit(uint64(cfg.Requests + 256)); err != nil || lim < uint64(cfg.Requests+64) {
		return nil, fmt.Errorf("file limit %d too low for %d requests: %v", lim, cfg.Requests, err)
	}
	rg, err := startRig(ctx, cfg.FLV, func(c *shopcast.Config) {
		c.TargetDuration, c.MaxBlockedRequests = cfg.TargetDuration, cfg.Requests+1000
	})
	if err != nil {
		return nil, err
	}
	defer rg.close()
	src, srv, lp := rg.src, rg.srv, rg.lp
	if _, err := lp.call(loadCmd{Op: "publish", RTMP: srv.publishURL(), FLV: cfg.FLV}); err != nil {
		return nil, err
	}
	// The first playlist waits for the first segment: one target duration.
	rctx, cancel := context.WithTimeout(ctx, 3*cfg.TargetDuration)
	defer cancel()
	if err := waitReady(rctx, &http.Client{}, srv.baseURL()); err != nil {
		return nil, err
	}
	res := &IdleResult{Source: src.desc, Requests: cfg.Requests, LoadBefore: LoadAvg()}
	if res.Before, err = rss(); err != nil {
		return nil, err
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if _, err := lp.call(loadCmd{Op: "idle", Base: srv.baseURL(), N: cfg.Requests, Ramp: cfg.Join}); err != nil {
		return nil, err
	}
	// All requests are released together when the segment they wait for
	// ends, and re-issued at once: read RSS when every one is held, and
	// again if the count moved while reading.
	deadline := time.Now().Add(3 * cfg.TargetDuration)
	for {
		if n := srv.pkg.Blocked(); n >= int64(cfg.Requests) {
			after, err := rss()
			if err != nil {
				return nil, err
			}
			runtime.ReadMemStats(&ms1)
			if srv.pkg.Blocked() == n {
				res.Held, res.After = n, after
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d requests held after %v", srv.pkg.Blocked(), cfg.Requests, 3*cfg.TargetDuration)
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	res.Goroutines = runtime.NumGoroutine()
	res.PerRequest = (res.After - res.Before) / res.Held
	res.Stack = (int64(ms1.StackInuse) - int64(ms0.StackInuse)) / res.Held
	res.Heap = (int64(ms1.HeapInuse) - int64(ms0.HeapInuse)) / res.Held
	res.LoadAfter = LoadAvg()
	return res, nil
}

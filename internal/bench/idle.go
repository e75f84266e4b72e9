package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
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
	// Release, when set, has the requests closed after RSS was read with
	// them held, and the server's memory read again right after (once the
	// packager holds none), then at each of these times after the close,
	// then once more after debug.FreeOSMemory: whether the memory comes
	// back, and whether it is Go's or held by connection state. Without it
	// the requests stay until the end.
	Release []time.Duration
	// HeapProfile, when set with Release, is the prefix of heap profiles
	// written after each reading from the close on: HeapProfile.closed,
	// .10s, ..., and .freeosmemory (after two more GCs, so that it shows
	// exactly what is live).
	HeapProfile string
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
	// Memory is the server's memory at each point of the release (with
	// IdleConfig.Release): baseline, held, closed, each Release time and
	// FreeOSMemory.
	Memory []MemPoint
}

func (r *IdleResult) String() string {
	return fmt.Sprintf(`idle blocked playlist requests (%s)
  %d requests, %d held by the packager when measured, %d server goroutines
  server RSS %.1f MiB -> %.1f MiB: %.1f KiB per held request (server only; the requests come from the load process)
  of which goroutine stacks %.1f KiB, heap in use %.1f KiB per request
  load average %s -> %s`,
		r.Source, r.Requests, r.Held, r.Goroutines, mb(r.Before), mb(r.After), float64(r.PerRequest)/1024,
		float64(r.Stack)/1024, float64(r.Heap)/1024,
		r.LoadBefore, r.LoadAfter) + memTable(r.Memory)
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
		// Every request comes from 127.0.0.1: this is not the fair-share test.
		c.MaxBlockedPerClient, c.MaxBlockedPerStream = c.MaxBlockedRequests, c.MaxBlockedRequests
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
	base := readMem("baseline", 0, srv.pkg.Blocked())
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
	if len(cfg.Release) == 0 {
		return res, nil
	}
	held := readMem("held", 0, srv.pkg.Blocked())
	if err := release(ctx, res, lp, srv, base, held, cfg); err != nil {
		return res, err
	}
	return res, nil
}

// release closes the held requests and reads the server's memory at the
// points of IdleConfig.Release after base (read before the requests) and
// held (with them held).
func release(ctx context.Context, res *IdleResult, lp *loadProcess, srv *server, base, held MemPoint, cfg IdleConfig) error {
	res.Memory = append(res.Memory, base, held)
	t0 := time.Now()
	if _, err := lp.call(loadCmd{Op: "release"}); err != nil {
		return err
	}
	// A closed connection ends its handler through net/http's background
	// read, which cancels the request's context.
	for srv.pkg.Blocked() > 0 {
		if time.Since(t0) > 10*time.Second {
			return fmt.Errorf("%d requests still held 10s after their connections closed", srv.pkg.Blocked())
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return ctx.Err()
		}
	}
	res.Memory = append(res.Memory, readMem("closed", time.Since(t0), 0))
	if err := heapProfile(cfg.HeapProfile, "closed"); err != nil {
		return err
	}
	for _, d := range cfg.Release {
		if !sleep(ctx, time.Until(t0.Add(d))) {
			return ctx.Err()
		}
		res.Memory = append(res.Memory, readMem("+"+d.String(), time.Since(t0), srv.pkg.Blocked()))
		if err := heapProfile(cfg.HeapProfile, d.String()); err != nil {
			return err
		}
	}
	debug.FreeOSMemory()
	res.Memory = append(res.Memory, readMem("FreeOSMemory", time.Since(t0), srv.pkg.Blocked()))
	if cfg.HeapProfile != "" {
		// A heap profile is as of the last GC but one.
		runtime.GC()
		runtime.GC()
	}
	return heapProfile(cfg.HeapProfile, "freeosmemory")
}

// heapProfile writes the heap profile to prefix.name, when prefix is set.
func heapProfile(prefix, name string) error {
	if prefix == "" {
		return nil
	}
	f, err := os.Create(prefix + "." + name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// MemPoint is the process's memory at one moment, read as it is: unlike
// rss, readMem neither collects nor returns memory to the OS first.
type MemPoint struct {
	Label   string
	Since   time.Duration // since the requests were closed
	Blocked int64         // the packager's blocked requests
	RSS     int64         // VmRSS
	// From runtime/metrics: /memory/classes/heap/objects, .../heap/free
	// (free pages still mapped), .../heap/released (returned to the OS),
	// .../heap/stacks (goroutine stacks in use and cached for reuse),
	// /gc/heap/goal and /gc/cycles/total.
	Objects, Free, Released, Stacks, Goal, GCs uint64
	Goroutines                                 int
	FDs                                        int // open file descriptors
}

var memMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/gc/heap/goal:bytes",
	"/gc/cycles/total:gc-cycles",
}

func readMem(label string, since time.Duration, blocked int64) MemPoint {
	p := MemPoint{Label: label, Since: since, Blocked: blocked, Goroutines: runtime.NumGoroutine()}
	s := make([]metrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	for i, v := range []*uint64{&p.Objects, &p.Free, &p.Released, &p.Stacks, &p.Goal, &p.GCs} {
		if s[i].Value.Kind() == metrics.KindUint64 {
			*v = s[i].Value.Uint64()
		}
	}
	p.RSS, _ = vmRSS()
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.FDs = len(fds)
	}
	return p
}

// memTable formats points as a table, in MiB; empty without points.
func memTable(points []MemPoint) string {
	if len(points) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n  server memory, read as it is (no GC first); MiB:\n")
	fmt.Fprintf(&b, "  %-14s %7s %7s %7s %7s %8s %7s %7s %4s %10s %6s %7s\n",
		"point", "at", "RSS", "objects", "free", "released", "stacks", "goal", "GCs", "goroutines", "fds", "blocked")
	for _, p := range points {
		at := "-"
		if p.Label != "baseline" && p.Label != "held" {
			at = fmt.Sprintf("%.1fs", p.Since.Seconds())
		}
		fmt.Fprintf(&b, "  %-14s %7s %7.1f %7.1f %7.1f %8.1f %7.1f %7.1f %4d %10d %6d %7d\n",
			p.Label, at, mb(p.RSS), mb(int64(p.Objects)), mb(int64(p.Free)), mb(int64(p.Released)),
			mb(int64(p.Stacks)), mb(int64(p.Goal)), p.GCs, p.Goroutines, p.FDs, p.Blocked)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

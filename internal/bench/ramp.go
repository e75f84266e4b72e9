package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// RampConfig sets up Ramp.
type RampConfig struct {
	// FLV is the file the publisher loops. It is required.
	FLV string
	// Steps are the viewer counts, in increasing order. It defaults to 250,
	// 500, 1000, 2000, 3000, 5000.
	Steps []int
	// Join is the time over which a step's new viewers join. It defaults
	// to 2s.
	Join time.Duration
	// Settle is the wait after joining before memory is read and the window
	// opens. It defaults to 3s.
	Settle time.Duration
	// Window is each step's measurement window. It defaults to 10s.
	Window time.Duration
	// MaxSpread is the p99 first-to-last delay that ends the ramp. It
	// defaults to 100ms.
	MaxSpread time.Duration
	// OnStep, when set, is called with each step's result as it is measured.
	OnStep func(RampStep)
}

// RampStep is one step of Ramp.
type RampStep struct {
	Viewers int
	Window  time.Duration
	// Spread is, per part, the first-to-last delay: the last viewer's
	// receive time minus the first's, over the parts every viewer got in
	// the window. Incomplete counts the window's other parts.
	Spread     Dist
	Incomplete int
	Parts      int64
	Bytes      int64
	Errors     int
	FirstErr   string
	// ServerCores is the server process's user+system time in the window
	// (getrusage RUSAGE_SELF: the server alone, the load is another
	// process) per second; LoadCores the load process's.
	ServerCores, LoadCores float64
	// RSS is the server's VmRSS after a GC at the end of the settle, and
	// RSSPerViewer its growth over the stream-only baseline per viewer.
	RSS, RSSPerViewer int64
	Goroutines        int
	Load              string
}

// Passed reports whether the step met the target: p99 first-to-last delay
// within max, every part of the window reached every viewer (one part at
// each edge of the window is allowed), and no viewer request failed.
func (s RampStep) Passed(max time.Duration) bool {
	return s.Spread.N > 0 && s.Spread.P99 <= max && s.Incomplete <= 2 && s.Errors == 0
}

func (s RampStep) String() string {
	w := s.Window.Seconds()
	return fmt.Sprintf("%5d viewers: first-to-last %s, %d parts incomplete, %.0f parts/s %.1f MB/s, %d errors; "+
		"server CPU %.2f cores (%.1f ms/s per 100 viewers), RSS %.1f MiB = %.1f KiB/viewer, %d goroutines; load process %.2f cores; load %s",
		s.Viewers, s.Spread, s.Incomplete, float64(s.Parts)/w, float64(s.Bytes)/w/1e6, s.Errors,
		s.ServerCores, 1000*s.ServerCores/float64(s.Viewers)*100,
		mb(s.RSS), float64(s.RSSPerViewer)/1024, s.Goroutines, s.LoadCores, s.Load)
}

// RampResult is the outcome of Ramp.
type RampResult struct {
	Source   string
	Baseline int64 // server VmRSS with the stream running and no viewer
	Steps    []RampStep
	// Max is the largest step that passed, 0 if none.
	Max int
	// Note says what ended the ramp.
	Note string
}

func (r *RampResult) String() string {
	s := fmt.Sprintf("viewer ramp (%s): server RSS %.1f MiB with the stream and no viewer\n", r.Source, mb(r.Baseline))
	for _, st := range r.Steps {
		s += "  " + st.String() + "\n"
		if st.FirstErr != "" {
			s += "    first viewer error: " + st.FirstErr + "\n"
		}
	}
	return s + climbSummary(r.Max, "viewers", r.Note)
}

// Ramp publishes cfg.FLV to an in-process server and adds LL-HLS viewers
// (each on its own keep-alive connection, as in Viewers) step by step until
// the p99 first-to-last delay passes cfg.MaxSpread. The publisher and the
// viewers run in a load process (LoadRole), so the server's CPU and RSS are
// this process's.
func Ramp(ctx context.Context, cfg RampConfig) (*RampResult, error) {
	if len(cfg.Steps) == 0 {
		cfg.Steps = []int{250, 500, 1000, 2000, 3000, 5000}
	}
	if cfg.Join <= 0 {
		cfg.Join = 2 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.MaxSpread <= 0 {
		cfg.MaxSpread = 100 * time.Millisecond
	}
	top := cfg.Steps[len(cfg.Steps)-1]
	if lim, err := RaiseFileLimit(uint64(top + 256)); err != nil || lim < uint64(top+64) {
		return nil, fmt.Errorf("file limit %d too low for %d viewers: %v", lim, top, err)
	}
	rg, err := startRig(ctx, cfg.FLV, nil)
	if err != nil {
		return nil, err
	}
	defer rg.close()
	srv, lp := rg.srv, rg.lp
	if _, err := lp.call(loadCmd{Op: "publish", RTMP: srv.publishURL(), FLV: cfg.FLV}); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, &http.Client{}, srv.baseURL()); err != nil {
		return nil, err
	}
	if !srv.untilWindowFull(ctx, time.Now()) {
		return nil, ctx.Err()
	}
	res := &RampResult{Source: rg.src.desc}
	if res.Baseline, err = rss(); err != nil {
		return nil, err
	}
	res.Steps, res.Max, res.Note, err = climb(cfg.Steps, "viewers", func(n, add int) (RampStep, error) {
		// The measure call lasts the window plus the load's one-second tail
		// for late parts.
		m, err := lp.step(ctx, loadCmd{Op: "viewers", Base: srv.baseURL(), N: add, Ramp: cfg.Join},
			loadCmd{Op: "measure", Window: cfg.Window}, cfg.Settle)
		if err != nil {
			return RampStep{}, err
		}
		r := m.reply
		st := RampStep{Viewers: n, Goroutines: m.goroutines}
		st.RSS, st.RSSPerViewer = m.rss, (m.rss-res.Baseline)/int64(n)
		st.ServerCores = m.cores
		st.LoadCores = r.Cores
		st.Window = cfg.Window
		st.Spread, st.Incomplete, st.Parts, st.Bytes = r.Spread, r.Incomplete, r.Parts, r.Bytes
		st.Errors, st.FirstErr, st.Load = r.Errors, r.FirstErr, LoadAvg()
		return st, nil
	}, func(st RampStep) bool { return st.Passed(cfg.MaxSpread) }, cfg.OnStep)
	if err != nil {
		return res, err
	}
	return res, nil
}

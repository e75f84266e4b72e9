package bench

import (
	"context"
	"fmt"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// StreamsConfig sets up Streams.
type StreamsConfig struct {
	// FLV is the file every publisher loops. It is required.
	FLV string
	// Steps are the stream counts, in increasing order. It defaults to 1,
	// 2, 5, 10, 20, 30, 40, 60, 80, 100.
	Steps []int
	// Settle is the wait after a step's publishers start (each after a
	// random delay under 2 s, so that keyframes do not line up) before
	// memory is read and the window opens. It defaults to 6s.
	Settle time.Duration
	// Window is each step's measurement window. It defaults to 10s.
	Window time.Duration
	// MaxP99 is the publish-to-deliverable p99 that ends the ramp. It
	// defaults to 50ms.
	MaxP99 time.Duration
	// OnStep, when set, is called with each step's result as it is measured.
	OnStep func(StreamsStep)
}

// StreamsStep is one step of Streams.
type StreamsStep struct {
	Streams int
	// Live counts the streams whose viewer got a part in the window.
	Live int
	// Latency is publish-to-deliverable (as PublishToDeliverable measures
	// it) over the parts of every stream's viewer in the window.
	Latency   Dist
	Unmatched int
	Errors    int
	// ServerCores is the server process's CPU per second (getrusage
	// RUSAGE_SELF; publishers and viewers are in the load process);
	// LoadCores the load process's.
	ServerCores, LoadCores float64
	// RSS is the server's VmRSS after a GC at the end of the settle;
	// RSSPerStream its growth over the server's idle RSS per stream. The
	// packager holds up to 13 segments per stream, so this grows with the
	// streams' age until their windows are full (26 s).
	RSS, RSSPerStream int64
	Goroutines        int
	Load              string
}

// Passed reports whether every stream delivered and p99 is within max.
func (s StreamsStep) Passed(max time.Duration) bool {
	return s.Live == s.Streams && s.Latency.N > 0 && s.Latency.P99 <= max
}

func (s StreamsStep) String() string {
	return fmt.Sprintf("%3d streams (%d delivering): publish-to-deliverable %s, %d unmatched, %d errors; "+
		"server CPU %.2f cores = %.1f%% of a core per stream, RSS %.1f MiB = %.1f MiB/stream, %d goroutines; load process %.2f cores; load %s",
		s.Streams, s.Live, s.Latency, s.Unmatched, s.Errors,
		s.ServerCores, 100*s.ServerCores/float64(s.Streams), mb(s.RSS), mb(s.RSSPerStream), s.Goroutines, s.LoadCores, s.Load)
}

// StreamsResult is the outcome of Streams.
type StreamsResult struct {
	Source string
	Idle   int64 // server VmRSS before any stream
	Steps  []StreamsStep
	// Max is the largest step that passed, 0 if none.
	Max  int
	Note string
}

func (r *StreamsResult) String() string {
	s := fmt.Sprintf("stream ramp (%s per stream): server RSS %.1f MiB idle\n", r.Source, mb(r.Idle))
	for _, st := range r.Steps {
		s += "  " + st.String() + "\n"
	}
	return s + climbSummary(r.Max, "streams", r.Note)
}

// Streams adds publishers of cfg.FLV to an in-process server step by step,
// each followed by one blocking LL-HLS viewer that measures
// publish-to-deliverable, until its p99 passes cfg.MaxP99. Publishers and
// viewers run in a load process (LoadRole), so the server's CPU and RSS are
// this process's.
func Streams(ctx context.Context, cfg StreamsConfig) (*StreamsResult, error) {
	if len(cfg.Steps) == 0 {
		cfg.Steps = []int{1, 2, 5, 10, 20, 30, 40, 60, 80, 100}
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 6 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.MaxP99 <= 0 {
		cfg.MaxP99 = 50 * time.Millisecond
	}
	top := cfg.Steps[len(cfg.Steps)-1]
	if _, err := RaiseFileLimit(uint64(4*top + 256)); err != nil {
		return nil, err
	}
	rg, err := startRig(ctx, cfg.FLV, func(c *shopcast.Config) { c.MaxStreams = top + 10 })
	if err != nil {
		return nil, err
	}
	defer rg.close()
	res := &StreamsResult{Source: rg.src.desc}
	if res.Idle, err = rss(); err != nil {
		return nil, err
	}
	rtmp, base := rg.srv.liveURLs()
	res.Steps, res.Max, res.Note, err = climb(cfg.Steps, "streams", func(n, add int) (StreamsStep, error) {
		m, err := rg.lp.step(ctx, loadCmd{Op: "streams", RTMP: rtmp, Base: base, FLV: cfg.FLV, N: add},
			loadCmd{Op: "latency", Window: cfg.Window}, cfg.Settle)
		if err != nil {
			return StreamsStep{}, err
		}
		r := m.reply
		st := StreamsStep{Streams: n, Goroutines: m.goroutines}
		st.RSS, st.RSSPerStream = m.rss, (m.rss-res.Idle)/int64(n)
		st.ServerCores = m.cores
		st.LoadCores = r.Cores
		st.Live, st.Latency, st.Unmatched, st.Errors, st.Load = r.Live, r.Latency, r.Unmatched, r.Errors, LoadAvg()
		return st, nil
	}, func(st StreamsStep) bool { return st.Passed(cfg.MaxP99) }, cfg.OnStep)
	if err != nil {
		return res, err
	}
	return res, nil
}

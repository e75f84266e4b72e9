package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// VODConfig sets up VOD.
type VODConfig struct {
	// FLV is the file published to make the recording. It is required.
	FLV string
	// Viewers is how many replay viewers read the recording at once. It
	// defaults to 500.
	Viewers int
	// Record is how long the stream is published, and so the recording's
	// length. It defaults to 20s (ten 2 s segments).
	Record time.Duration
	// Duration is each run's measurement window. It defaults to 30s.
	Duration time.Duration
	// Rounds is how many times the server's /recordings/ and the plain
	// http.FileServer alternate. It defaults to 2.
	Rounds int
	// Join is the time over which a run's viewers join; Settle the wait
	// after it before the window opens. They default to 2s and 3s.
	Join, Settle time.Duration
	// OnRun, when set, is called with each run's result as it is measured.
	OnRun func(VODRun)
}

// VODRun is one run of VOD: the viewers reading one of the two servers.
type VODRun struct {
	// Server is "shopcast" (the server's /recordings/) or "http.FileServer"
	// (the same directory, on another port of this process).
	Server  string
	Viewers int
	Window  time.Duration
	// ServerCores is this process's CPU per second over the window
	// (getrusage RUSAGE_SELF: the viewers are in the load process, and the
	// live side is idle); LoadCores the load process's.
	ServerCores, LoadCores float64
	// Bytes and Files are the bodies and responses the viewers read in the
	// window; Errors their failed requests.
	Bytes, Files int64
	Errors       int
	FirstErr     string
	Load         string
}

// CPUPerMB is the server's CPU time per megabyte (10^6 bytes) delivered.
func (r VODRun) CPUPerMB() time.Duration {
	if r.Bytes == 0 {
		return 0
	}
	return time.Duration(r.ServerCores * r.Window.Seconds() * float64(time.Second) / (float64(r.Bytes) / 1e6))
}

func (r VODRun) String() string {
	w := r.Window.Seconds()
	return fmt.Sprintf("%-15s %d viewers: %.1f MB/s, %.0f responses/s, %d errors; server CPU %.2f cores = %.3f ms per MB; load process %.2f cores; load %s",
		r.Server, r.Viewers, float64(r.Bytes)/w/1e6, float64(r.Files)/w, r.Errors,
		r.ServerCores, float64(r.CPUPerMB())/float64(time.Millisecond), r.LoadCores, r.Load)
}

// VODResult is the outcome of VOD.
type VODResult struct {
	Source string
	// Recording describes the recording read: its id, segments and size.
	Recording string
	Runs      []VODRun
}

func (r *VODResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replay delivery (%s), recording %s\n", r.Source, r.Recording)
	per := map[string][]float64{}
	for _, run := range r.Runs {
		fmt.Fprintf(&b, "  %s\n", run)
		if run.FirstErr != "" {
			fmt.Fprintf(&b, "    first viewer error: %s\n", run.FirstErr)
		}
		per[run.Server] = append(per[run.Server], float64(run.CPUPerMB())/float64(time.Millisecond))
	}
	s, f := per["shopcast"], per["http.FileServer"]
	if len(s) > 0 && len(f) > 0 {
		lo0, hi0, m0 := spread(s)
		lo1, hi1, m1 := spread(f)
		fmt.Fprintf(&b, "  CPU per MB: shopcast %.3f ms (%.3f-%.3f), http.FileServer %.3f ms (%.3f-%.3f): shopcast %+.1f %%",
			m0, lo0, hi0, m1, lo1, hi1, 100*(m0/m1-1))
	}
	return b.String()
}

// VOD measures what serving a replay costs: cfg.Viewers viewers in a load
// process read one finished recording, playlist then every segment in
// order with no pacing, first from the server's /recordings/, then from a
// plain http.FileServer of the same directory on another port of this
// process, alternating cfg.Rounds times. The figure is the server
// process's CPU per megabyte delivered.
func VOD(ctx context.Context, cfg VODConfig) (*VODResult, error) {
	if cfg.Viewers <= 0 {
		cfg.Viewers = 500
	}
	if cfg.Record <= 0 {
		cfg.Record = 20 * time.Second
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 2
	}
	if cfg.Join <= 0 {
		cfg.Join = 2 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if lim, err := RaiseFileLimit(uint64(2*cfg.Viewers + 256)); err != nil || lim < uint64(2*cfg.Viewers+64) {
		return nil, fmt.Errorf("file limit %d too low for %d viewers: %v", lim, cfg.Viewers, err)
	}
	src, err := loadSource(cfg.FLV)
	if err != nil {
		return nil, err
	}
	var recDir string
	srv, err := startServerConfig(func(c *shopcast.Config) {
		c.Record = true
		recDir = filepath.Join(filepath.Dir(c.CueStore), "recordings")
		c.RecordDir = recDir
		// The stream, and so its recording, ends a second after its
		// publisher.
		c.GracePeriod = time.Second
	})
	if err != nil {
		return nil, err
	}
	defer srv.close()

	// The recording: published from this process before anything is
	// measured.
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(pctx, srv.publishURL(), src, nil) }()
	if err := waitReady(ctx, &http.Client{}, srv.baseURL()); err != nil {
		return nil, errors.Join(err, drainErr(pubErr))
	}
	if !sleep(ctx, cfg.Record) {
		return nil, ctx.Err()
	}
	stopPub()
	if err := drainErr(pubErr); err != nil {
		return nil, err
	}
	m, err := waitRecording(ctx, filepath.Join(recDir, streamName))
	if err != nil {
		return nil, err
	}
	res := &VODResult{Source: src.desc, Recording: fmt.Sprintf("%s: %d segments, %.1f s, %.1f MB",
		m.ID, m.Segments, float64(m.DurationMs)/1000, float64(m.SizeBytes)/1e6)}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	fs := &http.Server{Handler: http.FileServer(http.Dir(recDir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = fs.Serve(ln) }()
	defer fs.Close()

	lp, err := startLoad(ctx)
	if err != nil {
		return nil, err
	}
	defer lp.close()
	urls := []struct{ server, url string }{
		{"shopcast", fmt.Sprintf("http://%s/recordings/%s/%s/stream.m3u8", srv.addrs.HTTP, streamName, m.ID)},
		{"http.FileServer", fmt.Sprintf("http://%s/%s/%s/stream.m3u8", ln.Addr(), streamName, m.ID)},
	}
	for range cfg.Rounds {
		for _, u := range urls {
			if _, err := lp.call(loadCmd{Op: "vod", Base: u.url, N: cfg.Viewers, Ramp: cfg.Join}); err != nil {
				return res, err
			}
			if !sleep(ctx, cfg.Settle) {
				return res, ctx.Err()
			}
			cpu0, t0 := cpuTime(), time.Now()
			r, err := lp.call(loadCmd{Op: "vodmeasure", Window: cfg.Duration})
			if err != nil {
				return res, err
			}
			run := VODRun{Server: u.server, Viewers: cfg.Viewers, Window: time.Since(t0)}
			run.ServerCores = (cpuTime() - cpu0).Seconds() / run.Window.Seconds()
			run.LoadCores, run.Bytes, run.Files, run.Errors, run.FirstErr = r.Cores, r.Bytes, r.Parts, r.Errors, r.FirstErr
			run.Load = LoadAvg()
			res.Runs = append(res.Runs, run)
			if cfg.OnRun != nil {
				cfg.OnRun(run)
			}
		}
	}
	if _, err := lp.call(loadCmd{Op: "vod"}); err != nil {
		return res, err
	}
	return res, nil
}

// recordingInfo is what VOD reads of a recording's manifest.json.
type recordingInfo struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Segments   int    `json:"segments"`
	DurationMs int64  `json:"duration_ms"`
	SizeBytes  int64  `json:"size_bytes"`
}

// waitRecording waits until the one recording under dir (record_dir/NAME)
// is complete (EXT-X-ENDLIST) and returns its manifest.
func waitRecording(ctx context.Context, dir string) (recordingInfo, error) {
	var m recordingInfo
	deadline := time.Now().Add(20 * time.Second)
	for {
		ids, _ := os.ReadDir(dir)
		if len(ids) == 1 {
			b, err := os.ReadFile(filepath.Join(dir, ids[0].Name(), "manifest.json"))
			if err == nil && json.Unmarshal(b, &m) == nil && m.State == "complete" {
				return m, nil
			}
		}
		if len(ids) > 1 {
			return m, fmt.Errorf("%s: %d recordings, want 1", dir, len(ids))
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("%s: no complete recording within 20s (state %q)", dir, m.State)
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return m, ctx.Err()
		}
	}
}

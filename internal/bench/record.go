package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// RecordConfig sets up Record.
type RecordConfig struct {
	// FLV is the file the publisher loops. It is required.
	FLV string
	// Duration is each run's measurement window. It defaults to 30s.
	Duration time.Duration
	// Rounds is how many times a run without recording and one with it
	// alternate (off, on, off, on, ...). It defaults to 2.
	Rounds int
	// Settle is the wait after the stream's first playlist before the
	// window opens. It defaults to 5s.
	Settle time.Duration
	// OnRun, when set, is called with each run's result as it is measured.
	OnRun func(RecordRun)
}

// RecordRun is one run of Record: a fresh server, recording or not.
type RecordRun struct {
	Record bool
	Window time.Duration
	// ServerCores is the server process's CPU per second over the window
	// (getrusage RUSAGE_SELF: the publisher and viewers are in the load
	// process); LoadCores the load process's.
	ServerCores, LoadCores float64
	// Hinted and ViaPlaylist are publish-to-deliverable, as
	// PublishToDeliverable measures them, of the part request blocked on
	// the preload hint and of the blocking reload then part GET.
	Hinted, ViaPlaylist Dist
	Unmatched, Errors   int
	// Written is the recorder's count of media bytes written
	// (shopcast_record_bytes_written_total) over the window, Dropped its
	// segments not recorded; DiskWrites the server process's bytes sent to
	// storage (/proc/self/io write_bytes: playlists, manifests and cue
	// store included).
	Written, Dropped, DiskWrites int64
	Load                         string
}

func (r RecordRun) String() string {
	w := r.Window.Seconds()
	onOff := "off"
	if r.Record {
		onOff = "on "
	}
	return fmt.Sprintf("record %s: server CPU %.2f%% of a core; hinted %s; reload then GET %s; %d unmatched, %d errors; "+
		"recorded %.1f MB (%.0f kbit/s), %d segments dropped, %.1f MB to storage; load process %.2f cores; load %s",
		onOff, 100*r.ServerCores, r.Hinted, r.ViaPlaylist, r.Unmatched, r.Errors,
		float64(r.Written)/1e6, float64(r.Written)*8/w/1000, r.Dropped, float64(r.DiskWrites)/1e6, r.LoadCores, r.Load)
}

// RecordResult is the outcome of Record.
type RecordResult struct {
	Source string
	Runs   []RecordRun
}

func (r *RecordResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "recording on vs off (%s), one stream, server alone in its process\n", r.Source)
	var cpu [2][]float64
	var p99 [2][]time.Duration
	for _, run := range r.Runs {
		fmt.Fprintf(&b, "  %s\n", run)
		i := 0
		if run.Record {
			i = 1
		}
		cpu[i] = append(cpu[i], run.ServerCores)
		p99[i] = append(p99[i], run.Hinted.P99)
	}
	if len(cpu[0]) > 0 && len(cpu[1]) > 0 {
		lo0, hi0, m0 := spread(cpu[0])
		lo1, hi1, m1 := spread(cpu[1])
		fmt.Fprintf(&b, "  server CPU: off %.2f%% (%.2f-%.2f), on %.2f%% (%.2f-%.2f): recording costs %+.2f%% of a core\n",
			100*m0, 100*lo0, 100*hi0, 100*m1, 100*lo1, 100*hi1, 100*(m1-m0))
		fmt.Fprintf(&b, "  hinted p99: off %s, on %s", msList(p99[0]), msList(p99[1]))
	}
	return b.String()
}

// spread returns the smallest, largest and mean of v (not empty).
func spread(v []float64) (lo, hi, mean float64) {
	lo, hi = v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
		mean += x
	}
	return lo, hi, mean / float64(len(v))
}

func msList(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = ms(d)
	}
	return strings.Join(s, ", ")
}

// Record measures what recording costs the live path: one stream on a
// server started without recording, then on one with it (record_dir in the
// server's temporary directory), alternating cfg.Rounds times. The
// publisher and its two viewers (PublishToDeliverable's) run in a load
// process, so the server's CPU is this process's.
func Record(ctx context.Context, cfg RecordConfig) (*RecordResult, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 2
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	src, err := loadSource(cfg.FLV)
	if err != nil {
		return nil, err
	}
	res := &RecordResult{Source: src.desc}
	for i := range 2 * cfg.Rounds {
		run, err := recordRun(ctx, cfg, i%2 == 1)
		if err != nil {
			return res, err
		}
		res.Runs = append(res.Runs, run)
		if cfg.OnRun != nil {
			cfg.OnRun(run)
		}
	}
	return res, nil
}

func recordRun(ctx context.Context, cfg RecordConfig, record bool) (RecordRun, error) {
	run := RecordRun{Record: record}
	rg, err := startRig(ctx, cfg.FLV, func(c *shopcast.Config) {
		c.Record = record
		c.RecordDir = filepath.Join(filepath.Dir(c.CueStore), "recordings")
	})
	if err != nil {
		return run, err
	}
	defer rg.close()
	// The load process names its first stream s0.
	const name = "s0"
	rtmp, base := rg.srv.liveURLs()
	if _, err := rg.lp.call(loadCmd{Op: "streams", RTMP: rtmp, Base: base, FLV: cfg.FLV, N: 1, Hinted: true}); err != nil {
		return run, err
	}
	client := newHTTPClient(1)
	if err := waitReady(ctx, client, base+name+"/"); err != nil {
		return run, err
	}
	if !sleep(ctx, cfg.Settle) {
		return run, ctx.Err()
	}
	metrics := fmt.Sprintf("http://%s/metrics", rg.srv.addrs.HTTP)
	w0, d0 := recorderCounters(ctx, client, metrics)
	io0 := storageWrites()
	cpu0, t0 := cpuTime(), time.Now()
	r, err := rg.lp.call(loadCmd{Op: "latency", Window: cfg.Duration})
	if err != nil {
		return run, err
	}
	run.Window = time.Since(t0)
	run.ServerCores = (cpuTime() - cpu0).Seconds() / run.Window.Seconds()
	run.DiskWrites = storageWrites() - io0
	w1, d1 := recorderCounters(ctx, client, metrics)
	run.Written, run.Dropped = w1-w0, d1-d0
	run.LoadCores = r.Cores
	run.Hinted, run.ViaPlaylist, run.Unmatched, run.Errors = r.Hinted, r.Latency, r.Unmatched, r.Errors
	run.Load = LoadAvg()
	return run, nil
}

// recorderCounters reads the recorder's bytes written and segments dropped
// from the server's metrics (0 without a recorder).
func recorderCounters(ctx context.Context, c *http.Client, url string) (written, dropped int64) {
	var b []byte
	if err := get(ctx, c, url, &b); err != nil {
		return 0, 0
	}
	for line := range bytes.Lines(b) {
		name, v, ok := strings.Cut(strings.TrimSpace(string(line)), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch name {
		case "shopcast_record_bytes_written_total":
			written = int64(f)
		case "shopcast_record_segments_dropped_total":
			dropped = int64(f)
		}
	}
	return written, dropped
}

// storageWrites returns write_bytes of /proc/self/io: what this process
// caused to be sent to storage.
func storageWrites() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

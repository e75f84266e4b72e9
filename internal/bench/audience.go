package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AudienceConfig sets up Audience.
type AudienceConfig struct {
	// FLV is the file the publisher loops. It is required.
	FLV string
	// Viewers is how many simulated watch pages send heartbeats. It
	// defaults to 5000.
	Viewers int
	// Heartbeat is each viewer's heartbeat interval. It defaults to 10s
	// (signal_heartbeat_interval's default).
	Heartbeat time.Duration
	// Reactions is the hearts per second of the burst. It defaults to 2000.
	Reactions int
	// Window is how long the runs without the burst measure. It defaults
	// to 30s.
	Window time.Duration
	// Burst is how long the burst lasts, and its run measures. It defaults
	// to 10s.
	Burst time.Duration
}

// AudienceRun is one measured window.
type AudienceRun struct {
	Name string
	// Hinted and Latency are publish-to-deliverable of the stream's two
	// viewers (part request blocked on the preload hint; blocking reload
	// then part GET).
	Hinted, Latency Dist
	// Cores is the server process's CPU over the window; RSS its VmRSS
	// (after a GC) at the end.
	Cores float64
	RSS   int64
	// Sent and NotAccepted are the load's signals answered 202 and
	// otherwise; Late were not sent in time (the load was behind);
	// RTT the 202s' round trips.
	Sent, NotAccepted, Late int
	RTT                     Dist
	// Accepted and Refused are the server's counters over the window,
	// by kind and by kind/reason.
	Accepted, Refused map[string]int64
}

func (r AudienceRun) String() string {
	return fmt.Sprintf("%-24s server CPU %5.1f%% of a core, RSS %5.1f MB; signals 202 %d, other %d, late %d, round trip %s\n"+
		"    server accepted %v refused %v\n"+
		"    publish-to-deliverable hinted %s\n"+
		"    publish-to-deliverable reload %s",
		r.Name, 100*r.Cores, mb(r.RSS), r.Sent, r.NotAccepted, r.Late, r.RTT, r.Accepted, r.Refused, r.Hinted, r.Latency)
}

// AudienceResult is the outcome of Audience.
type AudienceResult struct {
	Source                      string
	Viewers, Reactions          int
	Heartbeat, Window, BurstFor time.Duration
	Baseline, Heartbeats, Burst AudienceRun
	// PulseViewers is what pulse.json said after the heartbeats' run.
	PulseViewers int64
}

func (r *AudienceResult) String() string {
	return fmt.Sprintf("audience (%s): %d viewers, a heartbeat each every %s; then %d hearts/s for %s (runs without it: %s)\n  %s\n  %s\n  %s\n"+
		"  heartbeats cost %.2f%% of a core (CPU with them minus without); pulse.json viewers %d\n"+
		"  p99 publish-to-deliverable, burst minus baseline: hinted %s, reload %s",
		r.Source, r.Viewers, r.Heartbeat, r.Reactions, r.BurstFor, r.Window, r.Baseline, r.Heartbeats, r.Burst,
		100*(r.Heartbeats.Cores-r.Baseline.Cores), r.PulseViewers,
		ms(r.Burst.Hinted.P99-r.Baseline.Hinted.P99), ms(r.Burst.Latency.P99-r.Baseline.Latency.P99))
}

// Audience measures what the audience's signals cost the server and the
// stream: publish-to-deliverable and server CPU without signals, with
// Viewers heartbeats, and with a burst of Reactions hearts/s on top. The
// server is alone in this process, with its default limits; the
// publisher and the stream's viewers run in a load process, the watch
// pages in another.
func Audience(ctx context.Context, cfg AudienceConfig) (*AudienceResult, error) {
	if cfg.Viewers <= 0 {
		cfg.Viewers = 5000
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Reactions <= 0 {
		cfg.Reactions = 2000
	}
	if cfg.Window <= 0 {
		cfg.Window = 30 * time.Second
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10 * time.Second
	}
	src, err := loadSource(cfg.FLV)
	if err != nil {
		return nil, err
	}
	res := &AudienceResult{Source: src.desc, Viewers: cfg.Viewers, Reactions: cfg.Reactions, Heartbeat: cfg.Heartbeat, Window: cfg.Window, BurstFor: cfg.Burst}
	srv, err := startServer()
	if err != nil {
		return nil, err
	}
	defer srv.close()
	lp, err := startLoad(ctx, "GOMAXPROCS=4")
	if err != nil {
		return nil, err
	}
	defer lp.close()
	const name = "s0" // the load process's first stream
	rtmp, base := srv.liveURLs()
	if _, err := lp.call(loadCmd{Op: "streams", RTMP: rtmp, Base: base, FLV: cfg.FLV, N: 1, Hinted: true}); err != nil {
		return nil, err
	}
	client := newHTTPClient(2)
	if err := waitReady(ctx, client, base+name+"/"); err != nil {
		return nil, err
	}
	// The watch pages run in a load process of their own: in the one of
	// the publisher and the stream's viewers, their thousands of requests
	// a second would delay the frames and the parts being timed.
	pages, err := startLoad(ctx, "GOMAXPROCS=2")
	if err != nil {
		return nil, err
	}
	defer pages.close()
	signals := fmt.Sprintf("http://%s/api/v1/streams/%s/signals", srv.addrs.HTTP, name)
	metrics := fmt.Sprintf("http://%s/metrics", srv.addrs.HTTP)
	if _, err := pages.call(loadCmd{Op: "signals", Base: signals, N: cfg.Viewers}); err != nil {
		return nil, err
	}

	measure := func(name string, window time.Duration) (AudienceRun, error) {
		run := AudienceRun{Name: name}
		if _, err := pages.call(loadCmd{Op: "signalcounts"}); err != nil {
			return run, err
		}
		acc0, ref0 := signalCounters(ctx, client, metrics)
		cpu0, t0 := cpuTime(), time.Now()
		r, err := lp.call(loadCmd{Op: "latency", Window: window})
		if err != nil {
			return run, err
		}
		run.Cores = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
		run.Hinted, run.Latency = r.Hinted, r.Latency
		acc1, ref1 := signalCounters(ctx, client, metrics)
		run.Accepted, run.Refused = diff(acc1, acc0), diff(ref1, ref0)
		c, err := pages.call(loadCmd{Op: "signalcounts"})
		if err != nil {
			return run, err
		}
		run.Sent, run.NotAccepted, run.Late, run.RTT = c.Posted, c.Refused, c.Errors, c.PostTime
		run.RSS, _ = rss()
		return run, nil
	}
	if !sleep(ctx, 5*time.Second) {
		return nil, ctx.Err()
	}
	if res.Baseline, err = measure("no signals", cfg.Window); err != nil {
		return res, err
	}
	if _, err := pages.call(loadCmd{Op: "heartbeats", Window: cfg.Heartbeat}); err != nil {
		return res, err
	}
	// One interval first: every viewer has beaten once and is tracked.
	if !sleep(ctx, cfg.Heartbeat) {
		return res, ctx.Err()
	}
	if res.Heartbeats, err = measure(fmt.Sprintf("%d viewers' heartbeats", cfg.Viewers), cfg.Window); err != nil {
		return res, err
	}
	var pulse []byte
	if err := get(ctx, client, base+name+"/pulse.json", &pulse); err == nil {
		var p struct{ Viewers int64 }
		if json.Unmarshal(pulse, &p) == nil {
			res.PulseViewers = p.Viewers
		}
	}
	if _, err := pages.call(loadCmd{Op: "reactions", Rate: cfg.Reactions, Window: cfg.Burst}); err != nil {
		return res, err
	}
	if res.Burst, err = measure(fmt.Sprintf("+ %d hearts/s", cfg.Reactions), cfg.Burst); err != nil {
		return res, err
	}
	return res, nil
}

// signalCounters reads shopcast_signals_accepted_total by kind and
// shopcast_signals_refused_total by kind/reason from the server's metrics.
func signalCounters(ctx context.Context, c *http.Client, url string) (accepted, refused map[string]int64) {
	accepted, refused = map[string]int64{}, map[string]int64{}
	var b []byte
	if err := get(ctx, c, url, &b); err != nil {
		return accepted, refused
	}
	for line := range bytes.Lines(b) {
		l := strings.TrimSpace(string(line))
		name, rest, ok := strings.Cut(l, "{")
		if !ok || (name != "shopcast_signals_accepted_total" && name != "shopcast_signals_refused_total") {
			continue
		}
		labels, v, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		var key []string
		for kv := range strings.SplitSeq(labels, ",") {
			_, val, _ := strings.Cut(kv, "=")
			key = append(key, strings.Trim(val, `"`))
		}
		if name == "shopcast_signals_accepted_total" {
			accepted[strings.Join(key, "/")] = int64(f)
		} else {
			refused[strings.Join(key, "/")] = int64(f)
		}
	}
	return accepted, refused
}

// diff is b minus a per key, without the zeros.
func diff(b, a map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

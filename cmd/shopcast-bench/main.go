// Command shopcast-bench runs shopcast's end-to-end benchmarks on loopback
// and prints their figures (docs/benchmarks.md explains them):
//
//	go run ./cmd/shopcast-bench [-duration 60s] [-short] [-viewers 1000] [-run latency,viewers,cues,ingest,reconnect,ramp,streams,idle,record,vod,audience,multitrack,ladder,cluster,cluster-failover,cluster-cues] [-failovers 5] [-lowrate] [-window 10s]
//
// With -role load it is the load process of the ramp, streams, idle, cues,
// record and vod benchmarks (bench.LoadRole): they start it themselves.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopcast/shopcast/internal/bench"
)

func main() {
	duration := flag.Duration("duration", 60*time.Second, "measurement time of each benchmark")
	short := flag.Bool("short", false, "measure for 10s instead of -duration")
	viewers := flag.Int("viewers", 1000, "concurrent viewers of the viewers benchmark")
	run := flag.String("run", "latency,viewers", "benchmarks to run, comma-separated: latency, viewers, cues, ingest (RTMP vs RTSP, 1080p30 6 Mbit/s from ffmpeg), reconnect (an RTMP publisher's first part after it reconnects), ramp (viewers until p99 first-to-last > 100 ms), streams (publishers until p99 publish-to-deliverable > 50 ms), idle (10000 blocked playlist requests), record (one stream, recording off vs on), vod (replay viewers of a recording vs http.FileServer), audience (5000 viewers' heartbeats and a burst of 2000 hearts/s: server CPU, RSS, publish-to-deliverable), multitrack (server CPU per variant of OBS multitrack publishers), ladder (the ffmpeg ladder of two rungs, integrated vs by hand), cluster (blocking reload through a non-owner node vs direct), cluster-failover (kill -9 of the owner, a shopcast process, to the first part on another node; with and without the owner leading the registry's RAFT group), cluster-cues (a cue posted to a cluster node that does not own the stream, to the owner's part, vs a single node)")
	flvPath := flag.String("flv", "", "FLV file to publish (default: a 720p30 fixture made with ffmpeg, else testdata/h264_aac.flv)")
	lowRate := flag.Bool("lowrate", false, "ramp and streams publish a 1 Mbit/s 720p30 fixture made with ffmpeg instead of the 2.8 Mbit/s one")
	steps := flag.String("steps", "", "comma-separated step counts of ramp or streams (default: their own)")
	window := flag.Duration("window", 10*time.Second, "measurement window of each ramp and streams step")
	idleN := flag.Int("requests", 10000, "blocked playlist requests of the idle benchmark")
	releaseAt := flag.String("release", "", "idle: close the held requests and read the server's memory again at these times after the close (comma-separated, e.g. 10s,60s), then after debug.FreeOSMemory")
	role := flag.String("role", "", "internal: \"load\" runs the load process of ramp, streams and idle")
	cpuProfile := flag.String("cpuprofile", "", "write the server process's CPU profile to this file")
	mutexProfile := flag.String("mutexprofile", "", "write the server process's mutex contention profile to this file")
	memProfile := flag.String("memprofile", "", "write the server process's allocation profile to this file (with idle -release, also heap profiles FILE.closed, FILE.10s, ... after each reading)")
	h2c := flag.Bool("h2c", false, "viewers and idle requests use HTTP/2 over cleartext (prior knowledge) instead of HTTP/1.1")
	vodViewers := flag.Int("vod-viewers", 500, "concurrent replay viewers of the vod benchmark")
	failovers := flag.Int("failovers", 5, "cluster-failover: kills of each case (the owner led the registry or not), each on a fresh cluster")
	flag.Parse()
	// record and vod measure for 30s unless -duration or -short is given.
	recDuration := 30 * time.Second
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "duration":
			recDuration = *duration
		case "short":
			if *short {
				recDuration = 10 * time.Second
			}
		}
	})
	if *h2c {
		// The load process inherits it.
		_ = os.Setenv("SHOPCAST_BENCH_H2C", "1")
	}
	if *role == "load" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := bench.LoadRole(ctx, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "shopcast-bench load:", err)
			os.Exit(1)
		}
		return
	}
	if *short {
		*duration = 10 * time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "shopcast-bench:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *mutexProfile != "" {
		runtime.SetMutexProfileFraction(5)
		defer func() {
			if f, err := os.Create(*mutexProfile); err == nil {
				_ = pprof.Lookup("mutex").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	userFLV := *flvPath
	if err := runBenchmarks(ctx, *duration, *viewers, *failovers, strings.Split(*run, ","), *flvPath); err != nil {
		fmt.Fprintln(os.Stderr, "shopcast-bench:", err)
		os.Exit(1)
	}
	var release []time.Duration
	for f := range strings.SplitSeq(*releaseAt, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "shopcast-bench: -release:", err)
			os.Exit(2)
		}
		release = append(release, d)
	}
	if err := runRamps(ctx, strings.Split(*run, ","), userFLV, *lowRate, *steps, *window, bench.IdleConfig{Requests: *idleN, Release: release, HeapProfile: *memProfile}); err != nil {
		fmt.Fprintln(os.Stderr, "shopcast-bench:", err)
		os.Exit(1)
	}
	if err := runRecorder(ctx, strings.Split(*run, ","), userFLV, recDuration, *vodViewers); err != nil {
		fmt.Fprintln(os.Stderr, "shopcast-bench:", err)
		os.Exit(1)
	}
	if err := runAudience(ctx, strings.Split(*run, ","), userFLV); err != nil {
		fmt.Fprintln(os.Stderr, "shopcast-bench:", err)
		os.Exit(1)
	}
	if err := runMultitrack(ctx, strings.Split(*run, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "shopcast-bench:", err)
		os.Exit(1)
	}
}

// runAudience runs the audience benchmark when run names it.
func runAudience(ctx context.Context, run []string, flv string) error {
	if !slices.Contains(run, "audience") {
		return nil
	}
	flv, err := fixture(ctx, flv)
	if err != nil {
		return err
	}
	printHeader()
	fmt.Printf("audience: %s; server in-process (default signal limits), publisher and stream viewers in a load process, watch pages in another; load average %s\n", flv, bench.LoadAvg())
	r, err := bench.Audience(ctx, bench.AudienceConfig{FLV: flv})
	return report("audience", r, err)
}

// runMultitrack runs the multitrack benchmark when run names it.
func runMultitrack(ctx context.Context, run []string) error {
	if !slices.Contains(run, "multitrack") {
		return nil
	}
	printHeader()
	fmt.Printf("multitrack: server in-process, Enhanced RTMP publishers in a load process; load average %s\n", bench.LoadAvg())
	r, err := bench.Multitrack(ctx, bench.MultitrackConfig{OnRun: func(r bench.MultitrackRun) { fmt.Println("  run:", r) }})
	return report("multitrack", r, err)
}

// runRecorder runs the record and vod benchmarks named in run.
func runRecorder(ctx context.Context, run []string, flv string, d time.Duration, vodViewers int) error {
	want := func(name string) bool { return slices.Contains(run, name) }
	if !want("record") && !want("vod") {
		return nil
	}
	flv, err := fixture(ctx, flv)
	if err != nil {
		return err
	}
	printHeader()
	if want("record") {
		fmt.Printf("record: %s, %s per run; server in-process, publisher and viewers in a load process; load average %s\n", flv, d, bench.LoadAvg())
		r, err := bench.Record(ctx, bench.RecordConfig{FLV: flv, Duration: d, OnRun: func(r bench.RecordRun) { fmt.Println("  run:", r) }})
		if err := report("record", r, err); err != nil {
			return err
		}
	}
	if want("vod") {
		fmt.Printf("vod: %s, %s per run; server and http.FileServer in-process, replay viewers in a load process; load average %s\n", flv, d, bench.LoadAvg())
		r, err := bench.VOD(ctx, bench.VODConfig{FLV: flv, Viewers: vodViewers, Duration: d, OnRun: func(r bench.VODRun) { fmt.Println("  run:", r) }})
		if err := report("vod", r, err); err != nil {
			return err
		}
	}
	return nil
}

// runRamps runs the ramp, streams and idle benchmarks named in run.
func runRamps(ctx context.Context, run []string, flv string, lowRate bool, steps string, window time.Duration, idle bench.IdleConfig) error {
	want := func(name string) bool { return slices.Contains(run, name) }
	if !want("ramp") && !want("streams") && !want("idle") {
		return nil
	}
	var counts []int
	for f := range strings.SplitSeq(steps, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("-steps: %w", err)
		}
		counts = append(counts, n)
	}
	// The idle benchmark's stream matters only through the media the
	// packager holds while memory is read: the small testdata file.
	idleFLV := flv
	if idleFLV == "" {
		idleFLV = "testdata/h264_aac.flv"
	}
	switch {
	case flv != "":
	case lowRate:
		path, err := bench.LowRateFixture(ctx)
		if err != nil {
			return err
		}
		flv = path
	default:
		path, err := fixture(ctx, "")
		if err != nil {
			return err
		}
		flv = path
	}
	printHeader()
	if want("ramp") {
		fmt.Printf("ramp: %s; server in-process, publisher and viewers in a load process; load average %s\n", flv, bench.LoadAvg())
		r, err := bench.Ramp(ctx, bench.RampConfig{FLV: flv, Steps: counts, Window: window, OnStep: func(s bench.RampStep) { fmt.Println("  step:", s) }})
		if err := report("ramp", r, err); err != nil {
			return err
		}
	}
	if want("streams") {
		fmt.Printf("streams: %s; server in-process, publishers and viewers in a load process; load average %s\n", flv, bench.LoadAvg())
		r, err := bench.Streams(ctx, bench.StreamsConfig{FLV: flv, Steps: counts, Window: window, OnStep: func(s bench.StreamsStep) { fmt.Println("  step:", s) }})
		if err := report("streams", r, err); err != nil {
			return err
		}
	}
	if want("idle") {
		fmt.Printf("idle: %s; server in-process, requests from a load process; load average %s\n", idleFLV, bench.LoadAvg())
		idle.FLV = idleFLV
		r, err := bench.Idle(ctx, idle)
		if err := report("idle", r, err); err != nil {
			return err
		}
	}
	return nil
}

// report prints a benchmark's result, whole or up to the step that failed,
// and returns its error named after the benchmark.
func report[R any](name string, r *R, err error) error {
	if r != nil {
		fmt.Println(r)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func runBenchmarks(ctx context.Context, d time.Duration, viewers, failovers int, run []string, flv string) error {
	if !slices.ContainsFunc(run, func(s string) bool {
		return s == "latency" || s == "viewers" || s == "cues" || s == "ingest" || s == "reconnect" || s == "ladder" || s == "cluster" || s == "cluster-failover" || s == "cluster-cues"
	}) {
		return nil
	}
	flv, err := fixture(ctx, flv)
	if err != nil {
		return err
	}
	printHeader()
	if slices.Contains(run, "latency") {
		r, err := bench.PublishToDeliverable(ctx, bench.LatencyConfig{FLV: flv, Duration: d})
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		fmt.Println(r)
		fmt.Println("  load average after:", bench.LoadAvg())
	}
	if slices.Contains(run, "viewers") {
		r, err := bench.Viewers(ctx, bench.ViewersConfig{FLV: flv, Viewers: viewers, Duration: d})
		if err != nil {
			return fmt.Errorf("viewers: %w", err)
		}
		fmt.Println(r)
		fmt.Println("  load average after:", bench.LoadAvg())
	}
	if slices.Contains(run, "ingest") {
		fixture, err := bench.IngestFixture(ctx)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		fmt.Println("ingest: one publisher, ffmpeg -re -stream_loop -1 -c copy", fixture, "(a separate process); server in-process")
		rs, err := bench.Ingest(ctx, bench.IngestConfig{FLV: fixture, Duration: d})
		for _, r := range rs {
			fmt.Println(" ", r)
		}
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}
	if slices.Contains(run, "reconnect") {
		fmt.Println("reconnect: ffmpeg -re -stream_loop -1 -c copy", flv, "(a separate process), killed and restarted; server in-process")
		r, err := bench.Reconnect(ctx, bench.ReconnectConfig{FLV: flv})
		if err != nil {
			return fmt.Errorf("reconnect: %w", err)
		}
		fmt.Println(r)
	}
	if slices.Contains(run, "ladder") {
		fmt.Println("ladder: two rungs (480p 1200k, 360p 600k) from ffmpeg -re -stream_loop -1 -c copy", flv, "(a separate process); the server's ladder, then the same encoding by hand publishing each rung back over RTMP")
		rs, err := bench.Ladder(ctx, bench.LadderConfig{FLV: flv, Duration: d})
		for _, r := range rs {
			fmt.Println(" ", r)
		}
		if err != nil {
			return fmt.Errorf("ladder: %w", err)
		}
	}
	if slices.Contains(run, "cluster") {
		fmt.Println("cluster: three nodes in-process (embedded NATS, R3), ffmpeg -re -stream_loop -1 -c copy", flv, "to node 1")
		r, err := bench.Cluster(ctx, bench.ClusterConfig{FLV: flv})
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		fmt.Println(r)
	}
	if slices.Contains(run, "cluster-failover") {
		fmt.Println("cluster-failover: three nodes (node 1 a shopcast process, 2 and 3 in-process; embedded NATS, R3), ffmpeg -re -stream_loop -1 -c copy", flv, "to node 1, then to node 2 after the kill;", failovers, "kills of each case")
		r, err := bench.ClusterFailover(ctx, bench.ClusterFailoverConfig{FLV: flv, Runs: failovers})
		if err != nil {
			return fmt.Errorf("cluster-failover: %w", err)
		}
		fmt.Println(r)
	}
	if slices.Contains(run, "cluster-cues") {
		r, err := bench.ClusterCues(ctx, bench.ClusterCuesConfig{FLV: flv})
		if err != nil {
			return fmt.Errorf("cluster-cues: %w", err)
		}
		fmt.Println(r)
		fmt.Println("  load average after:", bench.LoadAvg())
	}
	if slices.Contains(run, "cues") {
		r, err := bench.Cues(ctx, bench.CuesConfig{FLV: flv, Duration: d})
		if err != nil {
			return fmt.Errorf("cues: %w", err)
		}
		fmt.Println(r)
		fmt.Println("  load average after:", bench.LoadAvg())
	}
	return nil
}

// fixture returns flv, or when it is empty the 720p30 fixture made from
// testdata (saying so when it had to be made differently).
func fixture(ctx context.Context, flv string) (string, error) {
	if flv != "" {
		return flv, nil
	}
	path, note, err := bench.Fixture(ctx, "testdata/h264_aac.flv")
	if err != nil {
		return "", err
	}
	if note != "" {
		fmt.Println("note:", note)
	}
	return path, nil
}

// printHeader prints the line that says when and on what a run was made.
func printHeader() {
	fmt.Printf("shopcast-bench %s, %d CPUs, GOMAXPROCS %d, %s/%s, load average %s\n",
		time.Now().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, bench.LoadAvg())
}

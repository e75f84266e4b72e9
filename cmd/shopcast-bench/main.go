// Command shopcast-bench runs shopcast's end-to-end benchmarks on loopback
// and prints their figures (docs/benchmarks.md explains them):
//
//	go run ./cmd/shopcast-bench [-duration 60s] [-short] [-viewers 1000] [-run latency,viewers,cues,ingest]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/bench"
)

func main() {
	duration := flag.Duration("duration", 60*time.Second, "measurement time of each benchmark")
	short := flag.Bool("short", false, "measure for 10s instead of -duration")
	viewers := flag.Int("viewers", 1000, "concurrent viewers of the viewers benchmark")
	run := flag.String("run", "latency,viewers", "benchmarks to run, comma-separated: latency, viewers, cues, ingest (RTMP vs RTSP, 1080p30 6 Mbit/s from ffmpeg)")
	flvPath := flag.String("flv", "", "FLV file to publish (default: a 720p30 fixture made with ffmpeg, else testdata/h264_aac.flv)")
	flag.Parse()
	if *short {
		*duration = 10 * time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := runBenchmarks(ctx, *duration, *viewers, strings.Split(*run, ","), *flvPath); err != nil {
		fmt.Fprintln(os.Stderr, "shopcast-bench:", err)
		os.Exit(1)
	}
}

func runBenchmarks(ctx context.Context, d time.Duration, viewers int, run []string, flv string) error {
	if flv == "" {
		path, note, err := bench.Fixture(ctx, "testdata/h264_aac.flv")
		if err != nil {
			return err
		}
		if note != "" {
			fmt.Println("note:", note)
		}
		flv = path
	}
	fmt.Printf("shopcast-bench %s, %d CPUs, GOMAXPROCS %d, %s/%s, load average %s\n",
		time.Now().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, bench.LoadAvg())
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

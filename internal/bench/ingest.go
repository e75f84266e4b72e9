package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// IngestFixtureArgs is the ffmpeg command line (after "ffmpeg") that makes
// the 1080p30 fixture of the ingest benchmark: x264 veryfast zerolatency at
// 6000 kbit/s CBR-like (maxrate = bitrate), keyframe every 2 s, AAC 128
// kbit/s, 6 s long. Temporal noise on testsrc2 keeps the encoder at its
// bit rate instead of far under it, as a camera picture would.
var IngestFixtureArgs = []string{
	"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
	"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
	"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6",
	"-vf", "noise=alls=8:allf=t",
	"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high", "-pix_fmt", "yuv420p",
	"-b:v", "6000k", "-maxrate", "6000k", "-bufsize", "12000k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
	"-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-f", "flv",
}

// IngestFixture returns the path of the 1080p30 H.264+AAC FLV, made with
// ffmpeg into the user cache directory on first use (about 30 s).
func IngestFixture(ctx context.Context) (string, error) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return "", errors.New("the ingest benchmark needs ffmpeg (publisher and fixture)")
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "shopcast-bench")
	path := filepath.Join(dir, "h264_aac_1080p30_6m.flv")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp.flv"
	cmd := exec.CommandContext(ctx, ffmpeg, append(slices.Clone(IngestFixtureArgs), tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ffmpeg: %w: %s", err, out)
	}
	return path, os.Rename(tmp, path)
}

// IngestConfig configures the ingest benchmark.
type IngestConfig struct {
	// FLV is the file ffmpeg replays (IngestFixture).
	FLV string
	// Duration is the measurement window of each protocol. It defaults to
	// 30s.
	Duration time.Duration
	// Settle is how long the stream runs before the window opens. It
	// defaults to 3s.
	Settle time.Duration
	// Protos are the ingest protocols measured, in order: "rtmp", "rtsp". It
	// defaults to both.
	Protos []string
}

// IngestResult is what one publisher cost the server over one protocol.
type IngestResult struct {
	Proto  string
	Window time.Duration
	// CPU is getrusage(RUSAGE_SELF) user+system over the window: the
	// in-process server only, since the publisher is an ffmpeg process.
	CPU time.Duration
	// RSSIdle is VmRSS (after a GC) with the server started and nothing
	// published; RSS with the stream running, at the end of the window.
	RSSIdle, RSS int64
	// PublisherCPU is the ffmpeg publisher's user+system time over its whole
	// run, for comparison (it is not in CPU).
	PublisherCPU time.Duration
	PublisherRun time.Duration
	// Segments and AvgBandwidth are read back from the origin: the stream
	// was packaged, at this rate.
	Segments     int
	AvgBandwidth int64
	Load         string
}

// Cores is the server CPU over the window in cores (1.0 = one core busy).
func (r IngestResult) Cores() float64 { return r.CPU.Seconds() / r.Window.Seconds() }

func (r IngestResult) String() string {
	pubCores := 0.0
	if r.PublisherRun > 0 {
		pubCores = r.PublisherCPU.Seconds() / r.PublisherRun.Seconds()
	}
	return fmt.Sprintf("%-4s server CPU %6.2f%% of a core (%v in %v), RSS %5.1f MB (idle %5.1f MB, +%5.1f MB), "+
		"%d segments at %d kbit/s; publisher ffmpeg -c copy %.2f%% of a core; load %s",
		strings.ToUpper(r.Proto), 100*r.Cores(), r.CPU.Round(time.Millisecond), r.Window.Round(time.Millisecond),
		mb(r.RSS), mb(r.RSSIdle), mb(r.RSS-r.RSSIdle), r.Segments, r.AvgBandwidth/1000, 100*pubCores, r.Load)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// Ingest measures, for each protocol in turn, what one 1080p30 publisher
// costs the server: an in-process server (ingest, packager, origin) on
// 127.0.0.1:0 and ffmpeg as a separate process replaying the fixture in
// real time (-re -stream_loop -1 -c copy), so that getrusage(RUSAGE_SELF)
// counts the server alone. No viewer reads the stream.
func Ingest(ctx context.Context, cfg IngestConfig) ([]IngestResult, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if len(cfg.Protos) == 0 {
		cfg.Protos = []string{"rtmp", "rtsp"}
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("the ingest benchmark needs ffmpeg")
	}
	var out []IngestResult
	for _, proto := range cfg.Protos {
		r, err := ingestOne(ctx, ffmpeg, proto, cfg)
		if err != nil {
			return out, fmt.Errorf("%s: %w", proto, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func ingestOne(ctx context.Context, ffmpeg, proto string, cfg IngestConfig) (IngestResult, error) {
	res := IngestResult{Proto: proto}
	if proto != "rtmp" && proto != "rtsp" {
		return res, fmt.Errorf("unknown protocol %q", proto)
	}
	srv, err := startServer()
	if err != nil {
		return res, err
	}
	defer srv.close()
	ingestAddr := srv.addrs.RTMP
	if proto == "rtsp" {
		ingestAddr = srv.addrs.RTSP
	}
	url := fmt.Sprintf("%s://%s/live/%s", proto, ingestAddr, streamName)
	base := srv.baseURL()

	if res.RSSIdle, err = rss(); err != nil {
		return res, err
	}

	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", cfg.FLV, "-c", "copy"}
	if proto == "rtmp" {
		args = append(args, "-f", "flv", url)
	} else {
		args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", url)
	}
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	cmd := exec.CommandContext(pctx, ffmpeg, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pubStart := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopFFmpeg := func() {
		stopPub()
		<-exited
		if ps := cmd.ProcessState; ps != nil {
			res.PublisherCPU = ps.UserTime() + ps.SystemTime()
			res.PublisherRun = time.Since(pubStart)
		}
	}

	c := newHTTPClient(1)
	if err := waitReady(ctx, c, base); err != nil {
		stopFFmpeg()
		return res, fmt.Errorf("%w (ffmpeg: %s)", err, strings.TrimSpace(stderr.String()))
	}
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return fmt.Errorf("ffmpeg exited: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
	}
	if err := sleep(cfg.Settle); err != nil {
		stopFFmpeg()
		return res, err
	}
	cpu0, t0 := cpuTime(), time.Now()
	if err := sleep(cfg.Duration); err != nil {
		stopFFmpeg()
		return res, err
	}
	res.CPU, res.Window = cpuTime()-cpu0, time.Since(t0)
	if res.RSS, err = rss(); err != nil {
		stopFFmpeg()
		return res, err
	}
	res.Load = LoadAvg()
	res.Segments, res.AvgBandwidth = streamStats(ctx, c, base)
	stopFFmpeg()
	return res, nil
}

var avgBandwidth = regexp.MustCompile(`AVERAGE-BANDWIDTH=(\d+)`)

// streamStats reads back the number of segments in the media playlist and
// the multivariant AVERAGE-BANDWIDTH: the stream was packaged, at what rate.
func streamStats(ctx context.Context, c *http.Client, base string) (segments int, avg int64) {
	read := func(name string) string {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+name, nil)
		if err != nil {
			return ""
		}
		resp, err := c.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	segments = strings.Count(read("stream.m3u8"), "#EXTINF:")
	if m := avgBandwidth.FindStringSubmatch(read("index.m3u8")); m != nil {
		avg, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return segments, avg
}

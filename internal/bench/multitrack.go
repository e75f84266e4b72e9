package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/hlsname"
	shopcast "github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/packager"
)

// MultitrackConfig sets up Multitrack.
type MultitrackConfig struct {
	// Streams is how many multitrack publishers run at once, so that the
	// cost of a variant, a fraction of a percent of a core, stands out of
	// the noise. It defaults to 10.
	Streams int
	// Tracks are the video track counts measured, each with a fresh server:
	// the source alone, then with 1, 2, ... variants. It defaults to 1, 2,
	// 3.
	Tracks []int
	// Settle is the wait after the publishers start before the window. It
	// defaults to 8s.
	Settle time.Duration
	// Window is each run's measurement window. It defaults to 20s.
	Window time.Duration
	// OnRun, when set, is called with each run's result.
	OnRun func(MultitrackRun)
}

// MultitrackRun is one run of Multitrack: Streams publishers of Tracks
// 720p30 video tracks each.
type MultitrackRun struct {
	Streams, Tracks int
	// Variants counts the variants listed by the streams' multivariant
	// playlists at the end of the window (want Streams*(Tracks-1)).
	Variants int
	// ServerCores is the server process's CPU per second over the window.
	ServerCores float64
	RSS         int64
}

func (r MultitrackRun) String() string {
	return fmt.Sprintf("%d streams x %d video tracks (%d variants listed): server CPU %.3f cores = %.2f%% of a core per stream, RSS %.1f MiB",
		r.Streams, r.Tracks, r.Variants, r.ServerCores, 100*r.ServerCores/float64(r.Streams), mb(r.RSS))
}

// MultitrackResult is the outcome of Multitrack.
type MultitrackResult struct {
	Source string
	Runs   []MultitrackRun
	// PerVariant is the server CPU one variant adds to one stream, in
	// cores: the slope from the first run to the last.
	PerVariant float64
}

func (r *MultitrackResult) String() string {
	s := fmt.Sprintf("multitrack passthrough (%s):\n", r.Source)
	for _, run := range r.Runs {
		s += "  " + run.String() + "\n"
	}
	return s + fmt.Sprintf("  one variant of one stream: %.2f%% of a core (target < 1%%)", 100*r.PerVariant)
}

// Multitrack measures what the ladder of an OBS Enhanced Broadcasting
// publisher costs the server: Streams publishers, each one Enhanced RTMP
// connection with Tracks 720p30 H.264 video tracks (encoded beforehand by
// ffmpeg from one source, as OBS encodes them) and AAC, in a load process;
// the server, in this process, publishes every extra track as a variant
// (no transcoding), and its CPU is read over the window. No viewers: the
// per-viewer cost is the same for every rendition (see the viewers and
// ramp benchmarks).
func Multitrack(ctx context.Context, cfg MultitrackConfig) (*MultitrackResult, error) {
	if cfg.Streams <= 0 {
		cfg.Streams = 10
	}
	if len(cfg.Tracks) == 0 {
		cfg.Tracks = []int{1, 2, 3}
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 8 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 20 * time.Second
	}
	maxTracks := 0
	for _, n := range cfg.Tracks {
		maxTracks = max(maxTracks, n)
	}
	files, err := multitrackFixture(ctx, maxTracks)
	if err != nil {
		return nil, err
	}
	res := &MultitrackResult{Source: fmt.Sprintf("720p30 H.264 about 1.7 Mbit/s per track + AAC 128 kbit/s, 4 s looped, from %s", filepath.Dir(files[0]))}
	for _, n := range cfg.Tracks {
		run, err := multitrackRun(ctx, cfg, files[:n])
		if err != nil {
			return res, err
		}
		res.Runs = append(res.Runs, run)
		if cfg.OnRun != nil {
			cfg.OnRun(run)
		}
	}
	if k := len(res.Runs); k > 1 {
		a, b := res.Runs[0], res.Runs[k-1]
		if dv := (b.Tracks - a.Tracks) * cfg.Streams; dv > 0 {
			res.PerVariant = (b.ServerCores - a.ServerCores) / float64(dv)
		}
	}
	return res, nil
}

// multitrackRun runs one server with cfg.Streams publishers of files.
func multitrackRun(ctx context.Context, cfg MultitrackConfig, files []string) (MultitrackRun, error) {
	run := MultitrackRun{Streams: cfg.Streams, Tracks: len(files)}
	srv, err := startServerConfig(func(c *shopcast.Config) { c.MaxStreams = cfg.Streams + 10 })
	if err != nil {
		return run, err
	}
	defer srv.close()
	lp, err := startLoad(ctx)
	if err != nil {
		return run, err
	}
	defer lp.close()
	rtmp, _ := srv.liveURLs()
	m, err := lp.step(ctx, loadCmd{Op: "multitrack", RTMP: rtmp, Files: files, N: cfg.Streams},
		loadCmd{Op: "wait", Window: cfg.Window}, cfg.Settle)
	if err != nil {
		return run, err
	}
	run.ServerCores, run.RSS = m.cores, m.rss
	for i := range cfg.Streams {
		if s, ok := srv.pkg.Stream(fmt.Sprintf("m%d", i)); ok {
			r, err := srv.pkg.Fetch(ctx, multivariantRequest(s.Name()))
			if err == nil {
				run.Variants += strings.Count(string(r.Body), "#EXT-X-STREAM-INF") - 1
			}
		}
	}
	return run, nil
}

// addMultitrack starts c.N multitrack publishers of c.Files, named m0, m1,
// ... (load process).
func (l *load) addMultitrack(c loadCmd) error {
	for i := range c.N {
		name := fmt.Sprintf("m%d", i)
		l.wg.Go(func() {
			err := testpub.PublishMultitrack(l.ctx, c.RTMP+name, c.Files, testpub.Options{Loops: 1 << 20})
			if err != nil && l.ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "load multitrack publisher", name+":", err)
			}
		})
	}
	return nil
}

// multitrackFixture returns n 720p30 FLV files of one picture, made with
// ffmpeg into the user cache directory on first use.
func multitrackFixture(ctx context.Context, n int) ([]string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "shopcast-bench", fmt.Sprintf("multitrack%d", n))
	heights := make([]int, n)
	var paths []string
	for i := range heights {
		heights[i] = 720
		paths = append(paths, filepath.Join(dir, fmt.Sprintf("ladder%d_720p.flv", i)))
	}
	if _, err := os.Stat(paths[n-1]); err == nil {
		return paths, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return testpub.EncodeLadder(ctx, dir, 4*time.Second, 30, 60, heights...)
}

func multivariantRequest(stream string) packager.Request {
	return packager.Request{Stream: stream, File: hlsname.Multivariant, MSN: -1, Part: -1}
}

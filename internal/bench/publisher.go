package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/shopcast/shopcast/internal/testpub"
)

// sendLog records when each video frame was written into the RTMP socket,
// keyed by its RTMP decode timestamp (loop offset included).
type sendLog struct {
	mu  sync.Mutex
	dts []time.Duration // increasing
	at  []time.Time
}

func (l *sendLog) add(dts time.Duration, at time.Time) {
	l.mu.Lock()
	l.dts = append(l.dts, dts)
	l.at = append(l.at, at)
	l.mu.Unlock()
}

// lookup returns the send time of the video frame whose DTS is nearest to
// dts, and how far that frame's DTS is from dts.
func (l *sendLog) lookup(dts time.Duration) (at time.Time, off time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.dts) == 0 {
		return time.Time{}, 0, false
	}
	i := sort.Search(len(l.dts), func(i int) bool { return l.dts[i] >= dts })
	best := -1
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(l.dts) && (best < 0 || absDur(l.dts[j]-dts) < absDur(l.dts[best]-dts)) {
			best = j
		}
	}
	return l.at[best], l.dts[best] - dts, true
}

// first returns the DTS of the first video frame sent.
func (l *sendLog) first() (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.dts) == 0 {
		return 0, false
	}
	return l.dts[0], true
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// source is the looped FLV a publisher sends.
type source struct {
	frames []testpub.Frame // video and audio in DTS order
	span   time.Duration   // one loop: last DTS - first DTS + one video frame
	desc   string
}

func loadSource(path string) (*source, error) {
	video, audio, err := testpub.ReadFLV(path)
	if err != nil {
		return nil, err
	}
	if len(video) < 2 {
		return nil, fmt.Errorf("%s: fewer than 2 video frames", path)
	}
	frames := append(slices.Clone(video), audio...)
	slices.SortStableFunc(frames, func(a, b testpub.Frame) int { return cmp.Compare(a.DTS, b.DTS) })
	first, last := frames[0].DTS, frames[len(frames)-1].DTS
	step := video[len(video)-1].DTS - video[len(video)-2].DTS
	var bytes int
	for _, f := range frames {
		bytes += len(f.Data)
	}
	span := last - first + step
	desc := fmt.Sprintf("%s: %d video + %d audio frames, %.1f s loop, %.0f kbit/s",
		filepath.Base(path), len(video), len(audio), span.Seconds(), float64(bytes)*8/span.Seconds()/1000)
	return &source{frames: frames, span: span, desc: desc}, nil
}

// publish sends src over RTMP in real time, looping with continuous
// timestamps, until ctx is done. Each video frame's send time (the moment
// the client's write into the socket returned) goes to log, if not nil.
func publish(ctx context.Context, url string, src *source, log *sendLog) error {
	c, err := testpub.Dial(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	start := time.Now()
	first := src.frames[0].DTS
	timer := time.NewTimer(0)
	defer timer.Stop()
	for loop := 0; ; loop++ {
		offset := time.Duration(loop) * src.span
		for _, f := range src.frames {
			f.PTS += offset
			f.DTS += offset
			if wait := time.Until(start.Add(f.DTS - first)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return nil
				case <-c.Done():
					return fmt.Errorf("publisher: %w", c.Err())
				}
			}
			if err := c.WriteFrame(f); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("publisher: %w", err)
			}
			if log != nil && f.Codec.IsVideo() {
				log.add(f.DTS, time.Now())
			}
		}
	}
}

// FixtureArgs is the ffmpeg command line (after "ffmpeg") that makes the
// 720p30 fixture: OBS-like x264 settings (veryfast, zerolatency, 2500
// kbit/s, keyframe every 2 s) and AAC 128 kbit/s, 4 s long.
var FixtureArgs = []string{
	"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
	"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
	"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
	"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high", "-pix_fmt", "yuv420p",
	"-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
	"-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-f", "flv",
}

// Fixture returns the path of a 720p30 H.264+AAC FLV, made with ffmpeg
// into the user cache directory on first use. Without ffmpeg it returns
// fallback (a smaller stream) and says so in note.
func Fixture(ctx context.Context, fallback string) (path, note string, err error) {
	ffmpeg, lerr := exec.LookPath("ffmpeg")
	if lerr != nil {
		return fallback, "ffmpeg not found: using " + fallback + ", not a 720p stream", nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "shopcast-bench")
	path = filepath.Join(dir, "h264_aac_720p30.flv")
	if _, err := os.Stat(path); err == nil {
		return path, "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	tmp := path + ".tmp.flv"
	cmd := exec.CommandContext(ctx, ffmpeg, append(slices.Clone(FixtureArgs), tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("ffmpeg: %w: %s", err, out)
	}
	return path, "", os.Rename(tmp, path)
}

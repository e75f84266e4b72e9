package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// The ramp, streams and idle benchmarks put their load (publishers,
// viewers, idle requests) in a second process, so that getrusage and VmRSS
// of the benchmark process are the in-process server's alone. The load
// process is this executable started with LoadRoleArgs; it reads one JSON
// loadCmd per line on stdin and answers each with one JSON loadReply line.

// LoadRoleArgs are the arguments that make cmd/shopcast-bench a load
// process (LoadRole).
var LoadRoleArgs = []string{"-role", "load"}

// loadCmd is one command to the load process.
type loadCmd struct {
	// Op is "publish" (RTMP, FLV: loop FLV to RTMP), "viewers" (Base, N,
	// Ramp: add N viewers of Base), "measure" (Window: spread of the
	// viewers' parts), "streams" (RTMP, Base, FLV, N: add N publishers, each
	// with one latency viewer; RTMP and Base take the stream name appended),
	// "latency" (Window: publish-to-deliverable of those viewers), "idle"
	// (Base, N, Ramp: hold N blocking playlist requests), "release" (close
	// the idle requests' connections and stop their requesters) or "cues" (Base:
	// the cue API URL of a stream, Rate: cues/s posted from now on), "vod"
	// (Base, N, Ramp: replace the replay viewers by N of the recording's
	// playlist Base; N 0 stops them) or "vodmeasure" (Window: what they
	// read).
	// Hinted, with "streams", gives each stream a second viewer whose part
	// requests wait on the preload hint (viewer.runHinted).
	Op     string
	RTMP   string        `json:",omitempty"`
	Base   string        `json:",omitempty"`
	FLV    string        `json:",omitempty"`
	N      int           `json:",omitempty"`
	Ramp   time.Duration `json:",omitempty"`
	Window time.Duration `json:",omitempty"`
	Rate   int           `json:",omitempty"`
	Hinted bool          `json:",omitempty"`
	// Files, with "multitrack" (RTMP, N), are the video files each of N
	// Enhanced RTMP publishers sends as one track each; "wait" (Window)
	// only lets the window pass.
	Files []string `json:",omitempty"`
}

// loadReply answers a loadCmd.
type loadReply struct {
	Err string `json:",omitempty"`
	// Cores is the load process's user+system time per second over a
	// measure or latency command.
	Cores float64
	// Measure: see RampStep.
	Spread     Dist
	Incomplete int
	Parts      int64
	Bytes      int64
	Errors     int
	FirstErr   string `json:",omitempty"`
	// Latency: publish-to-deliverable over every stream's parts, and how
	// many streams delivered a part in the window.
	Latency   Dist
	Unmatched int
	Live      int
	// Hinted is Latency for the hinted viewers ("streams" with Hinted).
	Hinted Dist
	// Posted, Refused and PostTime count the cue POSTs of the window
	// answered 201 and otherwise, and the 201s' round trips.
	Posted, Refused int
	PostTime        Dist
}

// loadProcess is the parent's handle on a load process.
type loadProcess struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	done chan error
}

// startLoad starts this executable as a load process, with env added to
// its environment.
func startLoad(ctx context.Context, env ...string) (*loadProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("load process: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, LoadRoleArgs...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load process: %w", err)
	}
	p := &loadProcess{cmd: cmd, in: in, out: bufio.NewScanner(out), done: make(chan error, 1)}
	p.out.Buffer(nil, 1<<20)
	return p, nil
}

// call sends c and waits for its reply.
// stepMeasure is what the server side measures at one step of a ramp.
type stepMeasure struct {
	goroutines int
	rss        int64
	cores      float64 // server CPU around the measure command
	reply      loadReply
}

// step adds load (add), lets it settle, then reads the server's RSS and
// its CPU around the measure command, which lasts the measurement window.
func (p *loadProcess) step(ctx context.Context, add, measure loadCmd, settle time.Duration) (stepMeasure, error) {
	var m stepMeasure
	if _, err := p.call(add); err != nil {
		return m, err
	}
	if !sleep(ctx, settle) {
		return m, ctx.Err()
	}
	m.goroutines = runtime.NumGoroutine()
	var err error
	if m.rss, err = rss(); err != nil {
		return m, err
	}
	cpu0, t0 := cpuTime(), time.Now()
	if m.reply, err = p.call(measure); err != nil {
		return m, err
	}
	m.cores = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	return m, nil
}

func (p *loadProcess) call(c loadCmd) (loadReply, error) {
	var r loadReply
	b, _ := json.Marshal(c)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return r, fmt.Errorf("load process %s: %w", c.Op, err)
	}
	if !p.out.Scan() {
		return r, fmt.Errorf("load process %s: no reply: %v", c.Op, p.out.Err())
	}
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("load process %s: %w", c.Op, err)
	}
	if r.Err != "" {
		return r, fmt.Errorf("load process %s: %s", c.Op, r.Err)
	}
	return r, nil
}

// close ends the load process: closing its stdin makes it stop its load and
// exit.
func (p *loadProcess) close() {
	_ = p.in.Close()
	_ = p.cmd.Wait()
}

// LoadRole is the load process: it runs commands read from in (one JSON
// loadCmd per line) and writes one JSON loadReply line to out for each,
// until in ends or ctx is done.
func LoadRole(ctx context.Context, in io.Reader, out io.Writer) error {
	// Viewers and idle requests each hold a socket.
	_, _ = RaiseFileLimit(1 << 20)
	if os.Getenv("GOGC") == "" {
		// The load process's heap is a few MB while its viewers read
		// megabyte playlists (50 cues/s), so at the default target its
		// collector runs every second and its pauses land in the receive
		// times it measures. It stands for viewers on other machines: let
		// it collect rarely, within a bound. The server keeps the default.
		debug.SetGCPercent(800)
		debug.SetMemoryLimit(2 << 30)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := &load{ctx: ctx, parts: map[int64]*partTimes{}, partSize: map[int64]int64{}}
	defer l.wg.Wait()
	defer cancel()
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var c loadCmd
		r := loadReply{}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			r.Err = err.Error()
		} else if err := l.do(c, &r); err != nil {
			r.Err = err.Error()
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return sc.Err()
}

// load is the state of the load process.
type load struct {
	ctx context.Context
	wg  sync.WaitGroup

	client  *http.Client // shared by idle requests and, over HTTP/2, viewers
	viewers []*viewer

	mu        sync.Mutex
	measuring bool
	from      time.Time
	parts     map[int64]*partTimes
	partSize  map[int64]int64

	streams []*latencyStream
	cues    *cueLoad  // the producers of "cues", nil before
	idle    *idleLoad // the requesters of "idle", nil before
	vod     *vodLoad  // the replay viewers of "vod", nil when none
}

// httpClient returns the load's HTTP client, able to keep a connection per
// viewer, stream and idle request.
func (l *load) httpClient() *http.Client {
	if l.client == nil {
		l.client = newHTTPClient(1 << 15)
	}
	return l.client
}

func (l *load) do(c loadCmd, r *loadReply) error {
	switch c.Op {
	case "publish":
		src, err := loadSource(c.FLV)
		if err != nil {
			return err
		}
		l.wg.Go(func() {
			if err := publish(l.ctx, c.RTMP, src, nil); err != nil {
				fmt.Fprintln(os.Stderr, "load publisher:", err)
			}
		})
		return nil
	case "viewers":
		return l.addViewers(c)
	case "measure":
		return l.measure(c, r)
	case "streams":
		return l.addStreams(c)
	case "latency":
		return l.latency(c, r)
	case "idle":
		return l.addIdle(c)
	case "release":
		return l.releaseIdle()
	case "cues":
		return l.addCueLoad(c)
	case "vod":
		return l.addVOD(c)
	case "vodmeasure":
		return l.measureVOD(c, r)
	case "multitrack":
		return l.addMultitrack(c)
	case "wait":
		cpu0, t0 := cpuTime(), time.Now()
		sleep(l.ctx, c.Window)
		r.Cores = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
		return nil
	}
	return errors.New("unknown op " + c.Op)
}

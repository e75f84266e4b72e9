package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// ClusterFailoverConfig configures the failover benchmark.
type ClusterFailoverConfig struct {
	// FLV is the file ffmpeg replays (Fixture).
	FLV string
	// Runs is how many kills of each case, each on a fresh cluster. It
	// defaults to 3.
	Runs int
	// Logger receives the in-process nodes' lines; nil discards them.
	Logger *slog.Logger
}

// ClusterFailoverResult holds the failover figures, by case.
type ClusterFailoverResult struct {
	// Leader are the failovers when the killed owner led the registry
	// bucket's RAFT group, Other when another node led it: from the
	// SIGKILL of the owner's process to the first part listed in the
	// playlist of node 2, where the publisher reconnected at once.
	Leader, Other []time.Duration
	Load          string
}

func (r ClusterFailoverResult) String() string {
	var b strings.Builder
	line := func(what string, ds []time.Duration) {
		d := dist(ds)
		fmt.Fprintf(&b, "  %s: p50 %.0f ms, max %.0f ms (n=%d:", what, float64(d.P50)/1e6, float64(d.Max)/1e6, d.N)
		for _, x := range ds {
			fmt.Fprintf(&b, " %.0f", float64(x)/1e6)
		}
		b.WriteString(" ms)\n")
	}
	b.WriteString("cluster failover, kill -9 of the owner (a shopcast process) to the first part on node 2:\n")
	line("the owner led the registry's RAFT group", r.Leader)
	line("another node led it", r.Other)
	fmt.Fprintf(&b, "  load %s", r.Load)
	return b.String()
}

// ClusterFailover measures the lease failover of a three-node cluster
// whose owner crashes: node 1 is a separate shopcast process (killed with
// SIGKILL: an in-process NATS server always shuts down gracefully, handing
// its RAFT leaderships over first), nodes 2 and 3 run in this process.
// Before each kill the registry bucket's leader is moved on purpose, to
// node 1 (the owner) or to node 3, through JetStream's leader stepdown.
func ClusterFailover(ctx context.Context, cfg ClusterFailoverConfig) (ClusterFailoverResult, error) {
	var res ClusterFailoverResult
	if cfg.Runs <= 0 {
		cfg.Runs = 3
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return res, errors.New("the cluster failover benchmark needs ffmpeg")
	}
	bin, cleanup, err := buildShopcast(ctx)
	if err != nil {
		return res, err
	}
	defer cleanup()
	for i := range 2 * cfg.Runs {
		leader := []string{"n1", "n3"}[i%2]
		d, err := failoverOnce(ctx, bin, ffmpeg, cfg.FLV, leader, log)
		if err != nil {
			return res, fmt.Errorf("run %d (registry leader %s): %w", i/2+1, leader, err)
		}
		if leader == "n1" {
			res.Leader = append(res.Leader, d)
		} else {
			res.Other = append(res.Other, d)
		}
	}
	res.Load = LoadAvg()
	return res, nil
}

// buildShopcast builds cmd/shopcast into a temporary directory.
func buildShopcast(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "shopcast-bench-bin")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "shopcast")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/shopcast/shopcast/cmd/shopcast").CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go build ./cmd/shopcast: %w\n%s", err, out)
	}
	return bin, func() { _ = os.RemoveAll(dir) }, nil
}

// failoverOnce runs one fresh cluster, moves the registry's leadership to
// leader, kills node 1 (the owner) with SIGKILL and returns the time to
// the first part on node 2.
func failoverOnce(ctx context.Context, bin, ffmpeg, flv, leader string, log *slog.Logger) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "shopcast-bench-failover")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	addrs := make([]string, 8) // three routes; node 1's HTTP, RTMP, RTSP, NATS
	for i := range addrs {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	routes := []string{"nats://" + addrs[0], "nats://" + addrs[1], "nats://" + addrs[2]}
	const token = "bench-cluster-token"

	// Node 1: a process.
	var out lockedBuffer
	p1 := exec.CommandContext(ctx, bin)
	p1.Stdout, p1.Stderr = &out, &out
	p1.Env = os.Environ()
	for k, v := range map[string]string{
		"HTTP": addrs[3], "RTMP": addrs[4], "RTSP": addrs[5], "RTSP_UDP_RTP": "", "RTSP_UDP_RTCP": "",
		"CUE_STORE": filepath.Join(dir, "n1", "cues.db"), "RECORD": "false",
		"CLUSTER_NODE": "n1", "CLUSTER_NATS_LISTEN": addrs[6], "CLUSTER_ROUTE_LISTEN": addrs[0],
		"CLUSTER_ROUTES": strings.Join(routes, ","), "CLUSTER_STORE_DIR": filepath.Join(dir, "n1", "nats"),
		"CLUSTER_TOKEN": token,
	} {
		p1.Env = append(p1.Env, "SHOPCAST_"+k+"="+v)
	}
	if err := os.MkdirAll(filepath.Join(dir, "n1"), 0o755); err != nil {
		return 0, err
	}
	if err := p1.Start(); err != nil {
		return 0, err
	}
	p1Done := make(chan struct{})
	go func() { _ = p1.Wait(); close(p1Done) }()
	defer func() {
		_ = p1.Process.Signal(syscall.SIGKILL)
		<-p1Done
	}()

	// Node 1 listens before the others pick free ports of their own, so
	// that none of them takes one of its ports first.
	c := newHTTPClient(8)
	lctx, lcancel := context.WithTimeout(ctx, 60*time.Second)
	defer lcancel()
	if err := waitListening(lctx, c, "http://"+addrs[3]+"/readyz"); err != nil {
		return 0, fmt.Errorf("node 1 did not start: %w\n%s", err, out.String())
	}

	// Nodes 2 and 3: in this process.
	var nodes []*benchNode
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	for i := 1; i < 3; i++ {
		c := shopcast.Defaults()
		c.HTTP, c.RTMP, c.RTSP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		c.RTSPUDPRTP, c.RTSPUDPRTCP = "", ""
		c.CueStore = filepath.Join(dir, fmt.Sprintf("n%d", i+1), "cues.db")
		c.Record = false
		c.ClusterNode = fmt.Sprintf("n%d", i+1)
		c.ClusterNATSListen = "127.0.0.1:0"
		c.ClusterRouteListen = addrs[i]
		c.ClusterRoutes = routes
		c.ClusterToken = token
		if err := os.MkdirAll(filepath.Dir(c.CueStore), 0o755); err != nil {
			return 0, err
		}
		srv, err := shopcast.New(c, log.With("node", c.ClusterNode))
		if err == nil {
			err = srv.Start()
		}
		if err != nil {
			return 0, err
		}
		rctx, cancel := context.WithCancel(context.Background())
		n := &benchNode{srv: srv, stop: cancel, done: make(chan error, 1),
			http: "http://" + srv.Addrs().HTTP.String(), rtmp: "rtmp://" + srv.Addrs().RTMP.String()}
		go func() { n.done <- srv.Run(rctx) }()
		nodes = append(nodes, n)
	}
	jctx, cancel := context.WithTimeout(ctx, 180*time.Second)
	defer cancel()
	for _, u := range []string{"http://" + addrs[3], nodes[0].http, nodes[1].http} {
		if err := waitReadyz(jctx, c, u+"/readyz"); err != nil {
			return 0, fmt.Errorf("the cluster did not join: %w\nnode 1: %s", err, out.String())
		}
	}

	publish := func(rtmp string) func() {
		cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
			"-re", "-stream_loop", "-1", "-i", flv, "-c", "copy", "-f", "flv", rtmp+"/live/"+streamName)
		if err := cmd.Start(); err != nil {
			return func() {}
		}
		return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	}
	stop := publish("rtmp://" + addrs[4])
	defer func() { stop() }()
	base := func(http string) string { return http + "/live/" + streamName + "/" }
	if err := waitReady(ctx, c, base(nodes[1].http)); err != nil { // through node 3
		return 0, err
	}
	reg := nodes[0].srv.Registry()
	mctx, mcancel := context.WithTimeout(ctx, 60*time.Second)
	defer mcancel()
	if err := reg.MoveBucketLeader(mctx, leader); err != nil {
		return 0, err
	}
	if !sleep(ctx, 1500*time.Millisecond) { // renewals report the publisher sending
		return 0, ctx.Err()
	}
	if l, err := reg.BucketLeader(ctx); err != nil || l != leader {
		return 0, fmt.Errorf("the registry's leader is %q (%v), not %s", l, err, leader)
	}
	t0 := time.Now()
	_ = p1.Process.Signal(syscall.SIGKILL)
	stop()
	stop = publish(nodes[0].rtmp)
	var pl []byte
	for {
		// Node 2's own playlist, once it lists a part: node 1 is dead,
		// so a playlist with parts is node 2's.
		if _, err := fetch(ctx, c, base(nodes[0].http)+"stream.m3u8", &pl); err == nil {
			if p, perr := parsePlaylist(pl); perr == nil && len(p.parts) > 0 {
				return time.Since(t0), nil
			}
		}
		if time.Since(t0) > 60*time.Second {
			return 0, errors.New("no part on the new owner within 60 s")
		}
		if !sleep(ctx, 5*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// waitListening waits until url answers HTTP at all.
func waitListening(ctx context.Context, c *http.Client, url string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lockedBuffer is a bytes.Buffer that a process writes while the
// benchmark may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

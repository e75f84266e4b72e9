package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// ClusterConfig configures the cluster benchmark.
type ClusterConfig struct {
	// FLV is the file ffmpeg replays (Fixture).
	FLV string
	// Reloads is how many blocking reloads are timed, direct and through a
	// non-owner at once. It defaults to 150 (about 50 s of parts).
	Reloads int
}

// ClusterResult holds the cluster's figures.
type ClusterResult struct {
	// Direct and Proxied are the blocking reloads for the next part on the
	// owner and through a non-owner, from sending to the whole answer;
	// Added is each proxied reload's completion after the direct one's.
	Direct, Proxied, Added Dist
	Load                   string
}

func (r ClusterResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster: blocking reload for the next part, direct: %s\n", r.Direct)
	fmt.Fprintf(&b, "  through a non-owner: %s\n", r.Proxied)
	fmt.Fprintf(&b, "  added by the proxy (non-owner done - direct done): %s\n", r.Added)
	fmt.Fprintf(&b, "  load %s", r.Load)
	return b.String()
}

// benchNode is one in-process member of the benchmark's cluster.
type benchNode struct {
	srv  *shopcast.Server
	stop context.CancelFunc
	done chan error
	http string
	rtmp string
}

func (n *benchNode) close() {
	n.stop()
	<-n.done
}

// startBenchCluster starts three clustered servers in this process and
// waits until each is ready.
func startBenchCluster(ctx context.Context, dir string) ([]*benchNode, error) {
	var routes, listens []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listens = append(listens, ln.Addr().String())
		routes = append(routes, "nats://"+ln.Addr().String())
		_ = ln.Close()
	}
	var nodes []*benchNode
	fail := func(err error) ([]*benchNode, error) {
		for _, n := range nodes {
			n.close()
		}
		return nil, err
	}
	for i := range 3 {
		cfg := shopcast.Defaults()
		cfg.HTTP, cfg.RTMP, cfg.RTSP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.RTSPUDPRTP, cfg.RTSPUDPRTCP = "", ""
		cfg.CueStore = filepath.Join(dir, fmt.Sprintf("n%d", i+1), "cues.db")
		cfg.Record = false
		cfg.ClusterNode = fmt.Sprintf("n%d", i+1)
		cfg.ClusterNATSListen = "127.0.0.1:0"
		cfg.ClusterRouteListen = listens[i]
		cfg.ClusterRoutes = routes
		if err := os.MkdirAll(filepath.Dir(cfg.CueStore), 0o755); err != nil {
			return fail(err)
		}
		srv, err := shopcast.New(cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			err = srv.Start()
		}
		if err != nil {
			return fail(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		n := &benchNode{srv: srv, stop: cancel, done: make(chan error, 1),
			http: "http://" + srv.Addrs().HTTP.String(), rtmp: "rtmp://" + srv.Addrs().RTMP.String()}
		go func() { n.done <- srv.Run(rctx) }()
		nodes = append(nodes, n)
	}
	c := newHTTPClient(4)
	for _, n := range nodes {
		deadline := time.Now().Add(90 * time.Second)
		for {
			resp, err := c.Get(n.http + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fail(errors.New("the cluster was not ready within 90 s"))
			}
			if !sleep(ctx, 50*time.Millisecond) {
				return fail(ctx.Err())
			}
		}
	}
	return nodes, nil
}

// Cluster measures a three-node cluster in this process: the time a
// non-owner adds to a blocking reload it proxies to the owner. The lease
// failover is ClusterFailover's (an owner in this process cannot crash:
// its NATS server always hands its RAFT leaderships over).
func Cluster(ctx context.Context, cfg ClusterConfig) (ClusterResult, error) {
	var res ClusterResult
	if cfg.Reloads <= 0 {
		cfg.Reloads = 150
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return res, errors.New("the cluster benchmark needs ffmpeg")
	}
	publish := func(rtmp string) func() {
		cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
			"-re", "-stream_loop", "-1", "-i", cfg.FLV, "-c", "copy", "-f", "flv", rtmp+"/live/"+streamName)
		if err := cmd.Start(); err != nil {
			return func() {}
		}
		return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	}
	c := newHTTPClient(8)
	var direct, proxied, added []time.Duration
	dir, err := os.MkdirTemp("", "shopcast-bench-cluster")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	nodes, err := startBenchCluster(ctx, dir)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	stop := publish(nodes[0].rtmp)
	defer stop()
	base := func(n *benchNode) string { return n.http + "/live/" + streamName + "/" }
	if err := waitReady(ctx, c, base(nodes[2])); err != nil {
		return res, err
	}
	var pl []byte
	for len(direct) < cfg.Reloads {
		if _, err := fetch(ctx, c, base(nodes[0])+"stream.m3u8", &pl); err != nil {
			return res, err
		}
		p, err := parsePlaylist(pl)
		if err != nil {
			return res, err
		}
		last := p.parts[len(p.parts)-1]
		q := fmt.Sprintf("stream.m3u8?_HLS_msn=%d&_HLS_part=%d", last.msn, last.idx+1)
		var wg sync.WaitGroup
		var tDirect, tProxied time.Duration
		var errD, errP error
		t0 := time.Now()
		wg.Go(func() {
			var b []byte
			_, errD = fetch(ctx, c, base(nodes[0])+q, &b)
			tDirect = time.Since(t0)
		})
		wg.Go(func() {
			var b []byte
			_, errP = fetch(ctx, c, base(nodes[2])+q, &b)
			tProxied = time.Since(t0)
		})
		wg.Wait()
		if err := errors.Join(errD, errP); err != nil {
			return res, err
		}
		direct, proxied, added = append(direct, tDirect), append(proxied, tProxied), append(added, tProxied-tDirect)
	}
	res.Direct, res.Proxied, res.Added = dist(direct), dist(proxied), dist(added)
	res.Load = LoadAvg()
	return res, nil
}

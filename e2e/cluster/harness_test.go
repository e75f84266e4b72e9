// Package cluster tests a shopcast cluster with real peers: three nodes on
// loopback with clustered embedded NATS servers (in this process, or one
// of them as a separate shopcast process to kill -9), a real ffmpeg
// publisher, gohlslib's Client as a viewer, and Varnish in front.
package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// fixture is published by ffmpeg (-c copy: no encoding on a shared CI
// machine).
const fixture = "../../testdata/h264_aac.flv"

// node is one member of a test cluster: in this process (srv) or a
// shopcast process (proc).
type node struct {
	name string
	HTTP string // http://127.0.0.1:PORT
	RTMP string // rtmp://127.0.0.1:PORT
	srv  *e2etest.Server
	proc *exec.Cmd
	// procDone is closed when the process has ended.
	procDone chan struct{}
	log      *e2etest.Buffer
}

// member is how a test wants one node: in this process (the default) or
// as a separate process, and its config changes.
type member struct {
	process bool
	edit    func(*server.Config)
}

// startCluster starts one node per member, all routed to each other, and
// waits until every node's /readyz answers 200 (JetStream has a quorum
// and the stream registry is read).
func startCluster(t *testing.T, members ...member) []*node {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	routes := make([]string, len(members))
	routeAddrs := make([]string, len(members))
	for i := range members {
		routeAddrs[i] = e2etest.FreeAddr(t)
		routes[i] = "nats://" + routeAddrs[i]
	}
	nodes := make([]*node, len(members))
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				if n != nil && n.proc != nil {
					t.Logf("%s log:\n%s", n.name, n.log)
				}
			}
		}
	})
	for i, m := range members {
		cfg := e2etest.Config(t)
		cfg.ClusterNode = fmt.Sprintf("n%d", i+1)
		cfg.ClusterNATSListen = "127.0.0.1:0"
		cfg.ClusterRouteListen = routeAddrs[i]
		cfg.ClusterRoutes = routes
		cfg.ClusterStoreDir = t.TempDir()
		cfg.ClusterToken = "cluster-test-token"
		cfg.Record = false
		if m.edit != nil {
			m.edit(&cfg)
		}
		if m.process {
			nodes[i] = startProcess(t, cfg)
			// The process binds its ports before the next node picks free
			// ports of its own, so that none can take one of them first.
			n := nodes[i]
			e2etest.WaitUntil(t, 60*time.Second, n.name+" listening", func() bool {
				if n.exited() {
					t.Fatalf("%s exited while starting:\n%s", n.name, n.log)
				}
				code, _, _ := tryGet(n.HTTP + "/readyz")
				return code != 0
			})
		} else {
			s := e2etest.Start(t, cfg)
			nodes[i] = &node{name: cfg.ClusterNode, HTTP: s.HTTP, RTMP: s.RTMP, srv: s, log: s.Log}
		}
	}
	// Joining takes a quorum of members, a meta leader and the registry's
	// bucket: seconds, more on a loaded machine, and a separate process
	// starts cold. The wait is for every node's /readyz, all at once; it
	// fails at once if a process exits, and otherwise only after a
	// deadline no healthy join comes near.
	joinWait := 180 * time.Second
	t0 := time.Now()
	readyz := make([]string, len(nodes))
	deadline := time.Now().Add(joinWait)
	for {
		ready := 0
		for i, n := range nodes {
			if n.exited() {
				t.Fatalf("%s exited while joining", n.name)
			}
			code, body, _ := tryGet(n.HTTP + "/readyz")
			readyz[i] = fmt.Sprintf("%s: %d %s", n.name, code, strings.TrimSpace(string(body)))
			if code == http.StatusOK {
				ready++
			}
		}
		if ready == len(nodes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not join within %v: %s", joinWait, strings.Join(readyz, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("cluster of %d joined in %v", len(nodes), time.Since(t0).Round(time.Millisecond))
	return nodes
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// shopcastBinary builds cmd/shopcast once per test run.
func shopcastBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shopcast-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "shopcast")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/shopcast").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// startProcess runs shopcast with cfg in its own process, every listener
// on a port chosen here; the test's end kills it.
func startProcess(t *testing.T, cfg server.Config) *node {
	t.Helper()
	httpAddr, rtmpAddr, rtspAddr, natsAddr := e2etest.FreeAddr(t), e2etest.FreeAddr(t), e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	env := map[string]string{
		"HTTP": httpAddr, "RTMP": rtmpAddr, "RTSP": rtspAddr, "RTSP_UDP_RTP": "", "RTSP_UDP_RTCP": "",
		"CUE_STORE": cfg.CueStore, "RECORD": fmt.Sprint(cfg.Record),
		"CLUSTER_NODE": cfg.ClusterNode, "CLUSTER_NATS_LISTEN": natsAddr,
		"CLUSTER_ROUTE_LISTEN": cfg.ClusterRouteListen, "CLUSTER_ROUTES": strings.Join(cfg.ClusterRoutes, ","),
		"CLUSTER_STORE_DIR": cfg.ClusterStoreDir, "CLUSTER_TOKEN": cfg.ClusterToken,
		"CLUSTER_LEASE_TTL": cfg.ClusterLeaseTTL.String(), "CLUSTER_LEASE_RENEW": cfg.ClusterLeaseRenew.String(),
		"PUBLISH_TAKEOVER_SILENCE": cfg.PublishTakeoverSilence.String(),
	}
	cmd := exec.Command(shopcastBinary(t))
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, "SHOPCAST_"+k+"="+v)
	}
	log := &e2etest.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{name: cfg.ClusterNode, HTTP: "http://" + httpAddr, RTMP: "rtmp://" + rtmpAddr, proc: cmd, log: log,
		procDone: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.procDone) }()
	t.Cleanup(func() { n.kill() })
	return n
}

// exited reports whether the node's process has ended.
func (n *node) exited() bool {
	if n.proc == nil {
		return false
	}
	select {
	case <-n.procDone:
		return true
	default:
		return false
	}
}

// kill ends the node at once: kill -9 for a process; for one in this
// process, its NATS server and connection stop without a word, then the
// rest of the server.
func (n *node) kill() {
	if n.proc != nil {
		_ = n.proc.Process.Signal(syscall.SIGKILL)
		<-n.procDone
		return
	}
	n.srv.Server.Cluster().Kill()
	_ = n.srv.Stop()
}

// ffmpeg publishes the fixture, looped, in real time to rtmpURL until ctx
// ends or the connection breaks; done is closed when it exits.
type ffmpeg struct {
	cmd  *exec.Cmd
	out  *e2etest.Buffer
	done chan struct{}
}

func startFFmpeg(t *testing.T, ctx context.Context, rtmpURL string) *ffmpeg {
	t.Helper()
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is required (make deps installs it)")
	}
	f := &ffmpeg{out: &e2etest.Buffer{}, done: make(chan struct{})}
	f.cmd = exec.CommandContext(ctx, bin, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-stream_loop", "-1", "-i", fixture, "-c", "copy", "-f", "flv", rtmpURL)
	f.cmd.Stderr = f.out
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-f.done
	})
	return f
}

// publish starts ffmpeg on n's RTMP port as stream name and waits for the
// stream's playlist there.
func publish(t *testing.T, ctx context.Context, n *node, name string) *ffmpeg {
	t.Helper()
	f := startFFmpeg(t, ctx, n.RTMP+"/live/"+name)
	e2etest.WaitUntil(t, 20*time.Second, "the stream on "+n.name, func() bool {
		code, _, _ := tryGet(n.HTTP + "/live/" + name + "/stream.m3u8")
		return code == http.StatusOK
	})
	return f
}

// tryGet GETs url; code 0 when it could not.
func tryGet(url string) (int, []byte, http.Header) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil
	}
	return resp.StatusCode, b, resp.Header
}

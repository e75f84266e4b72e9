package e2etest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Builder builds cmd/shopcast once and hands out its path: a test package
// keeps one Builder, so that its tests starting several processes pay for
// one build.
type Builder struct {
	once sync.Once
	path string
	err  error
}

// Path builds the binary on the first call and returns it.
func (b *Builder) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			b.err = err
			return
		}
		dir, err := os.MkdirTemp("", "shopcast-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "shopcast")
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/shopcast")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// ProcessConfig is what a shopcast process gets: its HTTP and RTMP
// addresses (FreeAddr when empty; set them first when another process's
// configuration must name them) and any other configuration key, by its
// name in cmd/shopcast (e.g. "pathways"), passed as SHOPCAST_* variables.
type ProcessConfig struct {
	HTTP, RTMP string
	Keys       map[string]string
}

// Process is shopcast running as a process of its own, so that a test
// can kill -9 it.
type Process struct {
	HTTP string // http://127.0.0.1:PORT
	RTMP string // rtmp://127.0.0.1:PORT
	Log  *Buffer

	cmd  *exec.Cmd
	done chan struct{}
}

// StartProcess runs the binary with cfg, its RTSP on a free port, its
// cue store in the test's temp dir, and waits until /readyz answers 200.
// The test's end kills it, and shows its log if the test failed.
func StartProcess(t testing.TB, binary string, cfg ProcessConfig) *Process {
	t.Helper()
	if cfg.HTTP == "" {
		cfg.HTTP = FreeAddr(t)
	}
	if cfg.RTMP == "" {
		cfg.RTMP = FreeAddr(t)
	}
	env := map[string]string{
		"http": cfg.HTTP, "rtmp": cfg.RTMP, "rtsp": FreeAddr(t), "rtsp_udp_rtp": "", "rtsp_udp_rtcp": "",
		"cue_store": filepath.Join(t.TempDir(), "cues.db"),
	}
	for k, v := range cfg.Keys {
		env[k] = v
	}
	cmd := exec.Command(binary)
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, "SHOPCAST_"+strings.ToUpper(k)+"="+env[k])
	}
	p := &Process{HTTP: "http://" + cfg.HTTP, RTMP: "rtmp://" + cfg.RTMP, Log: &Buffer{}, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("shopcast %s log:\n%s", p.HTTP, Tail(p.Log.String(), 6000))
		}
	})
	WaitUntil(t, 30*time.Second, "shopcast "+p.HTTP+" ready", func() bool {
		if p.Exited() {
			t.Fatalf("shopcast exited:\n%s", p.Log)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.HTTP+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// Kill ends the process at once (SIGKILL) and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

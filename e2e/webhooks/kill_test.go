package webhooks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/webhooks"
)

// TestE2EWebhooksKill9 runs the shopcast binary with a receiver that
// refuses everything, kills it with SIGKILL once its outbox holds the
// stream's events, and restarts it on the same files with the receiver
// accepting: every event is delivered after the restart, once, in order,
// the one refused before the kill with the same webhook-id.
func TestE2EWebhooksKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the shopcast binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shopcast")
	build := exec.Command("go", "build", "-o", bin, "./cmd/shopcast")
	build.Dir = "../.." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	secret := newSecret(t)
	rcv := newReceiver(t, secret, func(int, attempt) int { return http.StatusServiceUnavailable })
	conf, err := json.Marshal(map[string]any{
		"cue_store":            filepath.Join(dir, "cues.db"),
		"webhooks":             []webhooks.Endpoint{{URL: rcv.url, Secret: secret}},
		"webhook_attempts":     1000,
		"webhook_backoff_base": "100ms",
		"webhook_backoff_max":  "500ms",
		"log_format":           "json",
	})
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "shopcast.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}

	a := startProc(t, bin, confPath)
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan struct{})
	go func() {
		defer close(published)
		_ = testpub.Publish(ctx, a.rtmp+"/live/shop", fixture, testpub.Options{Loops: 100})
	}()
	defer func() { cancel(); <-published }()
	waitFor(t, 20*time.Second, "the stream to go live", func() bool {
		code, _ := get(t, a.http+"/live/shop/stream.m3u8")
		return code == http.StatusOK
	})
	if code := post(t, a.http+"/api/v1/streams/shop/cues", cueJSON("mug-1", 500)); code != http.StatusCreated {
		t.Fatalf("POST cue: %d", code)
	}
	// stream.started is refused again and again; the cue's start and end
	// wait behind it in the outbox.
	waitFor(t, 20*time.Second, "three events in the outbox and refused attempts", func() bool {
		_, page := get(t, a.http+"/metrics")
		return metric(page, "shopcast_webhook_outbox") >= 3 && len(rcv.all()) >= 2
	})
	refused := rcv.all()
	a.kill(t)
	cancel()
	<-published

	rcv.setAnswer(nil)
	b := startProc(t, bin, confPath)
	waitFor(t, 30*time.Second, "the events after the restart", func() bool {
		return rcv.has(webhooks.CueEnded) && rcv.has(webhooks.RecordingReady)
	})
	rcv.check()
	got := rcv.delivered()
	// The recording the kill left open is closed, and announced, by the
	// restart.
	if want := "stream.started cue.started cue.ended recording.ready"; types(got) != want {
		t.Fatalf("delivered %s, want %s", types(got), want)
	}
	for _, r := range refused {
		if r.id != got[0].id || r.msg.Type != webhooks.StreamStarted {
			t.Errorf("refused before the kill: %s %s; delivered first after it: %s", r.id, r.msg.Type, got[0].id)
		}
	}
	if got[1].msg.Data.CueID != "mug-1" || got[2].msg.Data.CueID != "mug-1" {
		t.Errorf("cue events for %q and %q", got[1].msg.Data.CueID, got[2].msg.Data.CueID)
	}
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool {
		_, page := get(t, b.http+"/metrics")
		return metric(page, "shopcast_webhook_outbox") == 0
	})
	for _, p := range []*proc{a, b} {
		if strings.Contains(p.logs.String(), strings.TrimPrefix(secret, "whsec_")) {
			t.Error("the secret is in shopcast's log")
		}
	}
}

// proc is a running shopcast binary.
type proc struct {
	cmd        *exec.Cmd
	http, rtmp string
	logs       *e2etest.Buffer
	done       chan struct{}
}

// startProc starts bin with the config file on loopback ports the kernel
// chooses, read from its "shopcast ready" log line.
func startProc(t *testing.T, bin, conf string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "-config", conf, "-http", "127.0.0.1:0", "-rtmp", "127.0.0.1:0", "-rtsp", "127.0.0.1:0",
		"-rtsp_udp_rtp", "", "-rtsp_udp_rtcp", "")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOPCAST_") { // the test sets the whole configuration
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &e2etest.Buffer{}, done: make(chan struct{})}
	ready := make(chan [2]string, 1)
	var once sync.Once
	go func() {
		// Drained to the end, so that the process never blocks on a full pipe.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			_, _ = p.logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Publish, Play string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "shopcast ready" {
				once.Do(func() { ready <- [2]string{line.Publish, line.Play} })
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("shopcast log:\n%s", p.logs.String())
		}
	})
	select {
	case addrs := <-ready:
		p.rtmp = strings.TrimSuffix(addrs[0], "/live/{stream key}")
		p.http = strings.TrimSuffix(addrs[1], "/live/{name}/index.m3u8")
	case <-p.done:
		t.Fatalf("shopcast exited before it was ready:\n%s", p.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("shopcast not ready in 30 s:\n%s", p.logs.String())
	}
	return p
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Error(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Error("shopcast did not exit 10 s after SIGKILL")
	}
}

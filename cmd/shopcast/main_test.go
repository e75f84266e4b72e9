package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/server"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loopbackArgs binds every listener to a free loopback port, turns RTSP's
// fixed UDP ports off and keeps the cue store in the test's temp dir, so
// tests can run side by side.
func loopbackArgs(t *testing.T) []string {
	return []string{"-http", "127.0.0.1:0", "-rtmp", "127.0.0.1:0", "-rtsp", "127.0.0.1:0",
		"-rtsp_udp_rtp", "", "-rtsp_udp_rtcp", "", "-cue_store", t.TempDir() + "/cues.db"}
}

// startRun runs shopcast on loopback ports and returns its addresses, a
// function that stops it and returns run's error, and its log.
func startRun(t *testing.T, args []string, env envMap) (server.Addrs, func() error, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	args = append(loopbackArgs(t), args...)
	go func() {
		done <- runWith(ctx, args, logs, env.lookup, func(l server.Addrs) { ready <- l })
	}()
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("run did not return after its context ended")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case l := <-ready:
		return l, stop, logs
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("run not ready\n%s", logs.String())
	}
	return server.Addrs{}, nil, nil
}

func TestRunServesAndShutsDown(t *testing.T) {
	const secret = "sk_live_0a1b2c"
	l, stop, logs := startRun(t, []string{"-publish_auth"},
		envMap{"SHOPCAST_PUBLISH_KEYS": secret + "=shop"})

	resp, err := http.Get("http://" + l.HTTP.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}

	// No stream is publishing: its playlist is a short-lived 404.
	resp, err = http.Get("http://" + l.HTTP.String() + "/live/shop/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Cache-Control") != "public, max-age=1" {
		t.Errorf("playlist of no stream: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}

	c, err := net.Dial("tcp", l.RTMP.String())
	if err != nil {
		t.Fatalf("RTMP port: %v", err)
	}
	c.Close()

	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, a := range []net.Addr{l.HTTP, l.RTMP} {
		if c, err := net.Dial("tcp", a.String()); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after shutdown", a)
		}
	}

	out := logs.String()
	for _, want := range []string{
		"rtmp://" + l.RTMP.String() + "/live/{stream key}",
		"http://" + l.HTTP.String() + "/live/{name}/index.m3u8",
		"shutting down",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("the log shows a secret stream key:\n%s", out)
	}
}

// TestRunBindError checks that a busy port fails run and releases what was
// already started.
func TestRunBindError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rtmpAddr := free.Addr().String()
	free.Close()

	var logs syncBuffer
	err = runWith(context.Background(),
		[]string{"-http", busy.Addr().String(), "-rtmp", rtmpAddr, "-rtsp", "127.0.0.1:0", "-rtsp_udp_rtp", "", "-rtsp_udp_rtcp", "", "-cue_store", t.TempDir() + "/cues.db"}, &logs, envMap{}.lookup, nil)
	if err == nil {
		t.Fatal("run succeeded on a busy port")
	}
	// The RTMP listener started before the origin failed is closed again.
	ln, err := net.Listen("tcp", rtmpAddr)
	if err != nil {
		t.Fatalf("RTMP port still held: %v", err)
	}
	ln.Close()
}

func TestRunHelp(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &stderr)
	if err == nil || !strings.Contains(stderr.String(), "SHOPCAST_HTTP") {
		t.Fatalf("err %v, help %q", err, stderr.String())
	}
}

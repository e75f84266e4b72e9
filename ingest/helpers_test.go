package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
)

// notifier wakes waiters whenever something changes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) signal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
	}
	n.ch = make(chan struct{})
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// waitUntil waits until cond holds, re-checking it on every change
// signalled by n, and fails the test after timeout.
func waitUntil(t *testing.T, n *notifier, timeout time.Duration, what string, cond func() bool, dump func() string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := n.wait()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			msg := ""
			if dump != nil {
				msg = "\n" + dump()
			}
			t.Fatalf("timed out after %v waiting for %s%s", timeout, what, msg)
		}
	}
}

// fakeSink records publications.
type fakeSink struct {
	notifier

	mu   sync.Mutex
	pubs []*fakePub
}

type fakePub struct {
	sink   *fakeSink
	info   PublishInfo
	units  []*Unit
	data   []*Data
	closes int
}

func (s *fakeSink) Publish(info PublishInfo) (Publication, error) {
	s.mu.Lock()
	p := &fakePub{sink: s, info: info}
	s.pubs = append(s.pubs, p)
	s.mu.Unlock()
	s.signal()
	return p, nil
}

func (p *fakePub) WriteUnit(u *Unit) error {
	p.sink.mu.Lock()
	p.units = append(p.units, u)
	p.sink.mu.Unlock()
	p.sink.signal()
	return nil
}

func (p *fakePub) WriteData(d *Data) {
	p.sink.mu.Lock()
	p.data = append(p.data, d)
	p.sink.mu.Unlock()
	p.sink.signal()
}

func (p *fakePub) Close() {
	p.sink.mu.Lock()
	p.closes++
	p.sink.mu.Unlock()
	p.sink.signal()
}

// snapshot runs f under the sink's lock.
func (s *fakeSink) snapshot(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *fakeSink) numPubs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pubs)
}

func (s *fakeSink) pub(i int) *fakePub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pubs[i]
}

// waitPub waits for the i-th publication.
func (s *fakeSink) waitPub(t *testing.T, i int, timeout time.Duration) *fakePub {
	t.Helper()
	waitUntil(t, &s.notifier, timeout, fmt.Sprintf("publication %d", i),
		func() bool { return s.numPubs() > i }, nil)
	return s.pub(i)
}

func (s *fakeSink) waitClosed(t *testing.T, p *fakePub, timeout time.Duration) {
	t.Helper()
	waitUntil(t, &s.notifier, timeout, "publication close",
		func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return p.closes > 0
		}, nil)
}

// logBuffer captures slog output.
type logBuffer struct {
	notifier

	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	l.signal()
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) contains(all ...string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		ok := true
		for _, s := range all {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// waitLine waits for a log line containing every one of substrs.
func (l *logBuffer) waitLine(t *testing.T, timeout time.Duration, substrs ...string) {
	t.Helper()
	waitUntil(t, &l.notifier, timeout, fmt.Sprintf("log line with %q", substrs),
		func() bool { return l.contains(substrs...) }, l.String)
}

// testServer is an RTMPServer on 127.0.0.1:0 with a fake Sink and captured
// logs.
type testServer struct {
	*RTMPServer
	sink *fakeSink
	logs *logBuffer
}

func startTestServer(t *testing.T, configure func(*RTMPServer)) *testServer {
	t.Helper()
	ts := &testServer{sink: &fakeSink{}, logs: &logBuffer{}}
	ts.RTMPServer = &RTMPServer{
		Address: "127.0.0.1:0",
		Sink:    ts.sink,
		Logger:  slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(ts.RTMPServer)
	}
	if err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ts.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	return ts
}

func (ts *testServer) url(path string) string {
	return "rtmp://" + ts.Addr().String() + path
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// gortmplibPublisher connects gortmplib's client to ts as a publisher of
// path and sends what its Writer sends first: onMetaData and the tracks'
// configurations.
func gortmplibPublisher(t *testing.T, ts *testServer, path string, tracks ...*gortmplib.Track) *gortmplib.Writer {
	t.Helper()
	u, err := url.Parse(ts.url(path))
	if err != nil {
		t.Fatal(err)
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := &gortmplib.Writer{Conn: c, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	return w
}

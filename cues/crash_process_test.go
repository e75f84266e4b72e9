package cues

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/packager"
)

// TestProcessRetryAfterKill runs the shopcast binary on a cue store as
// crashes leave it, then kills it with SIGKILL while POSTs are in flight and
// restarts it: every retry of a POST that got no 201 must get one, and GET
// must show every cue; none may answer 409 for a cue GET does not show.
func TestProcessRetryAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the shopcast binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shopcast")
	build := exec.Command("go", "build", "-o", bin, "./cmd/shopcast")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	storePath := filepath.Join(dir, "cues.db")
	body := func(id string, durationMs string) string { return cueBody(t, id, `"now"`, durationMs) }

	// A store as two crashes left it, written with the Store API by a
	// handle that then went away: a POST that had only reserved its id,
	// one that had recorded its placement but not answered, and one whose
	// retry comes with another cue.
	st := openStore(t, storePath)
	now := time.Now()
	for _, id := range []string{"crash-reserved", "crash-placed", "crash-other"} {
		c, err := DecodeCue([]byte(body(id, "600000")))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Reserve("shop", c, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Place("shop", "crash-placed", packager.EventTime{Wall: now}, now); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	a := startShopcast(t, bin, storePath)
	cueURL := func(id string) string { return a.http + "/api/v1/streams/shop/cues/" + id }
	postURL := a.http + "/api/v1/streams/shop/cues"
	// Before the stream is live: the recorded cue shows and its retry is
	// answered from the store; the reserved one shows nowhere yet.
	a.expect(t, "GET", cueURL("crash-reserved"), "", http.StatusNotFound)
	a.expect(t, "GET", cueURL("crash-placed"), "", http.StatusOK)
	a.expect(t, "POST", postURL, body("crash-placed", "600000"), http.StatusCreated)

	a.publish(t, "shop")
	a.waitLive(t, "shop")
	for _, id := range []string{"crash-reserved", "crash-placed"} {
		// Scheduled too: a "now" cue's start is its frame's program
		// date-time, which can be a little ahead of the server's clock.
		if got := a.expect(t, "POST", postURL, body(id, "600000"), http.StatusCreated); got.State != StateActive && got.State != StateScheduled {
			t.Errorf("retry of %s: %s", id, got.State)
		}
		a.expect(t, "GET", cueURL(id), "", http.StatusOK)
	}
	a.expect(t, "POST", postURL, body("crash-other", "300000"), http.StatusConflict)
	a.expect(t, "GET", cueURL("crash-other"), "", http.StatusNotFound)
	a.expect(t, "POST", postURL, body("crash-other", "600000"), http.StatusCreated)
	// Viewers get the cue whose placement the crash interrupted.
	waitUntil(t, 20*time.Second, "the taken-over cue in the playlist", func() bool {
		code, pl := a.get(t, a.http+"/live/shop/stream.m3u8")
		return code == http.StatusOK && strings.Contains(string(pl), `#EXT-X-DATERANGE:ID="crash-reserved"`)
	})

	// SIGKILL while POSTs are in flight, then a restart and the retries.
	// The POSTs move in step (their writes share commits), so each round
	// kills later into a POST, until a kill lands between a reservation
	// and its placement.
	proc, leftovers := a, 0
	for round := range 6 {
		delay := time.Duration(round) * 25 * time.Millisecond
		status := postUntilKilled(t, proc, fmt.Sprintf("r%d-", round), 20, delay, body)
		var retry []string
		for id, code := range status {
			if code != http.StatusCreated {
				retry = append(retry, id)
			}
		}
		// What the kill left between reserving and placing: the store is
		// free again, the process being dead.
		st = openStore(t, storePath)
		pending := 0
		for _, id := range retry {
			if r, err := st.Get("shop", id); err == nil && r.State == StatePending {
				pending++
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		leftovers += pending
		t.Logf("round %d, killed %v after the 20th 201: %d POSTs without an answer, %d of them left pending",
			round, delay, len(retry), pending)

		proc = startShopcast(t, bin, storePath)
		proc.publish(t, "shop")
		proc.waitLive(t, "shop")
		for _, id := range retry {
			if code, err := proc.post(proc.http+"/api/v1/streams/shop/cues", body(id, "600000")); err != nil || code != http.StatusCreated {
				t.Errorf("retry of %s after the kill: %d %v", id, code, err)
			}
		}
		for id := range status {
			proc.expect(t, "GET", proc.http+"/api/v1/streams/shop/cues/"+id, "", http.StatusOK)
		}
		if t.Failed() || leftovers > 0 {
			break // a kill has left reservations, and their retries placed them
		}
	}
	// The prepared store above covers that window whatever the timing.
	t.Logf("%d reservations left pending by the kills, all placed by their retry", leftovers)
}

// postUntilKilled posts cues from 4 clients at once to p, and kills p with
// SIGKILL delay after the acks-th 201. It returns the status of every POST
// made, 0 for one without an answer.
func postUntilKilled(t *testing.T, p *shopcastProc, prefix string, acks int32, delay time.Duration,
	body func(id, durationMs string) string) map[string]int {
	const workers = 4
	var (
		mu      sync.Mutex
		status  = map[string]int{}
		created atomic.Int32
		wg      sync.WaitGroup
		enough  = make(chan struct{})
	)
	url := p.http + "/api/v1/streams/shop/cues"
	for w := range workers {
		wg.Go(func() {
			for i := w; ; i += workers {
				id := fmt.Sprintf("%s%04d", prefix, i)
				code, err := p.post(url, body(id, "600000"))
				mu.Lock()
				status[id] = code
				mu.Unlock()
				if err != nil {
					return // the server is gone
				}
				if code != http.StatusCreated {
					t.Errorf("POST %s before the kill: %d", id, code)
					return
				}
				if created.Add(1) == acks {
					close(enough)
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d cues were not placed in 30 s", acks)
	}
	time.Sleep(delay) // not a synchronisation: where in a POST the kill lands
	p.kill(t)
	wg.Wait()
	return status
}

// shopcastProc is a running shopcast binary.
type shopcastProc struct {
	cmd    *exec.Cmd
	http   string // http://127.0.0.1:PORT
	rtmp   string // rtmp://127.0.0.1:PORT
	client *http.Client
	logs   *lockedBuffer
	done   chan struct{} // closed when the process has exited
}

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

// startShopcast starts bin on loopback ports the kernel chooses and reads
// them from its "shopcast ready" log line.
func startShopcast(t *testing.T, bin, storePath string) *shopcastProc {
	t.Helper()
	cmd := exec.Command(bin, "-http", "127.0.0.1:0", "-rtmp", "127.0.0.1:0", "-rtsp", "127.0.0.1:0",
		"-rtsp_udp_rtp", "", "-rtsp_udp_rtcp", "", "-cue_store", storePath, "-cue_rate", "1000",
		"-log_format", "json")
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
	p := &shopcastProc{cmd: cmd, client: &http.Client{Timeout: 10 * time.Second}, logs: &lockedBuffer{}, done: make(chan struct{})}
	ready := make(chan [2]string, 1)
	go func() {
		// Drained to the end, so that the process never blocks on a full pipe.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			_, _ = p.logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Publish, Play string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "shopcast ready" {
				ready <- [2]string{line.Publish, line.Play}
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
func (p *shopcastProc) kill(t *testing.T) {
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

// publish publishes the test file to stream, in a loop, until the test ends
// or the server goes away.
func (p *shopcastProc) publish(t *testing.T, stream string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = testpub.Publish(ctx, p.rtmp+"/live/"+stream, "../testdata/h264_aac.flv", testpub.Options{Loops: 1000})
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (p *shopcastProc) waitLive(t *testing.T, stream string) {
	t.Helper()
	waitUntil(t, 20*time.Second, stream+" live", func() bool {
		code, _ := p.get(t, p.http+"/live/"+stream+"/stream.m3u8")
		return code == http.StatusOK
	})
}

func (p *shopcastProc) get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := p.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// post posts a cue; an error is a POST without an answer.
func (p *shopcastProc) post(url, body string) (int, error) {
	resp, err := p.client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// expect makes a request, checks its status and returns the cue it shows,
// if any.
func (p *shopcastProc) expect(t *testing.T, method, url, body string, status int) CueResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, status)
	}
	var out CueResponse
	if status < 300 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, url, b, err)
		}
	}
	return out
}

// waitUntil polls cond until it holds or d has passed: the process is
// outside the test, and nothing in it can signal the test.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

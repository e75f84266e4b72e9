package audience

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// TestPulseThroughVarnish: 1,000 pages poll pulse.json every second
// through a real Varnish edge (deploy/varnish/shopcast.vcl as shipped);
// the origin sees about one request per max-age, and the pollers still
// see a viewer who arrives during the run within a few max-ages.
func TestPulseThroughVarnish(t *testing.T) {
	const (
		name    = "shop"
		pollers = 1000
		run     = 10 * time.Second
		maxAge  = time.Second // pulse_max_age's default
	)
	varnishd, err := exec.LookPath("varnishd")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/varnishd"); statErr != nil {
			t.Fatalf("varnishd is required (make deps installs Debian's varnish): %v", err)
		}
		varnishd = "/usr/sbin/varnishd"
	}
	srv := startLive(t, name, 90, nil)
	origin := startCountingProxy(t, srv.Addrs.HTTP.String())
	edge := freeAddr(t)
	startVarnish(t, varnishd, t.TempDir(), edge, origin.addr)
	pulseURL := "http://" + edge + "/live/" + name + "/pulse.json"
	e2etest.WaitUntil(t, 20*time.Second, "varnish to serve the pulse", func() bool {
		resp, err := http.Get(pulseURL)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	tr := &http.Transport{MaxIdleConnsPerHost: pollers, MaxConnsPerHost: pollers, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		ok, failed atomic.Int64
		sawViewer  atomic.Int64 // pollers that saw the viewer who arrives
		arrived    atomic.Int64 // when it arrived, Unix ns
		lagMu      sync.Mutex
		lags       []time.Duration
	)
	origin.reset()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range pollers {
		wg.Go(func() {
			// Spread over the first second, as pages open at random.
			time.Sleep(time.Duration(i) * time.Second / pollers)
			seen := false
			for time.Since(start) < run {
				next := time.Now().Add(time.Second)
				resp, err := client.Get(pulseURL)
				if err != nil {
					failed.Add(1)
				} else {
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					var p struct{ Viewers int }
					if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &p) != nil {
						failed.Add(1)
					} else {
						ok.Add(1)
						if at := arrived.Load(); !seen && at != 0 && p.Viewers >= 1 {
							seen = true
							sawViewer.Add(1)
							lagMu.Lock()
							lags = append(lags, time.Since(time.Unix(0, at)))
							lagMu.Unlock()
						}
					}
				}
				time.Sleep(time.Until(next))
			}
		})
	}
	// A viewer arrives a third of the way in.
	time.Sleep(run / 3)
	if a := signal(t, srv, name, "", body(viewer(1), `"kind":"heartbeat"`)); a.status != http.StatusAccepted {
		t.Fatalf("heartbeat: %d %s", a.status, a.body)
	}
	arrived.Store(time.Now().UnixNano())
	wg.Wait()
	elapsed := time.Since(start)

	var fromOrigin int
	for _, r := range origin.requests() {
		if r.path == "/live/"+name+"/pulse.json" {
			fromOrigin++
		}
	}
	perMaxAge := float64(fromOrigin) / (float64(elapsed) / float64(maxAge))
	var worst time.Duration
	for _, l := range lags {
		worst = max(worst, l)
	}
	t.Logf("%d pollers, %v: %d pulses served by the edge (%d failed), %d reached the origin: %.2f per max-age (%.1f/s); the new viewer seen by %d pollers, the last %v after it arrived",
		pollers, elapsed.Round(100*time.Millisecond), ok.Load(), failed.Load(), fromOrigin, perMaxAge,
		float64(fromOrigin)/elapsed.Seconds(), sawViewer.Load(), worst.Round(10*time.Millisecond))
	if failed.Load() > ok.Load()/100 {
		t.Errorf("%d of %d pulse requests failed", failed.Load(), ok.Load()+failed.Load())
	}
	if ok.Load() < pollers*int64(run/time.Second)/2 {
		t.Errorf("only %d pulses served in %v to %d pollers", ok.Load(), run, pollers)
	}
	// About one per max-age: Varnish refetches when its copy expires; a
	// little more than one is its TTL granularity and the request in
	// flight at each expiry.
	if perMaxAge > 2 || fromOrigin < int(elapsed/maxAge)/2 {
		t.Errorf("the origin saw %d pulse requests in %v: %.2f per max-age, want about 1", fromOrigin, elapsed.Round(time.Second), perMaxAge)
	}
	if sawViewer.Load() < pollers*9/10 {
		t.Errorf("only %d of %d pollers saw the viewer who arrived", sawViewer.Load(), pollers)
	}
	// Edge TTL + the origin's rebuild period + one poll period.
	if worst > 4*maxAge {
		t.Errorf("a poller saw the new viewer %v after the heartbeat", worst)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startVarnish runs deploy/varnish/shopcast.vcl, its placeholders set, in
// the foreground with its working dir in dir, until the test ends.
func startVarnish(t *testing.T, bin, dir, listen, originAddr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(originAddr)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../../deploy/varnish/shopcast.vcl")
	if err != nil {
		t.Fatal(err)
	}
	vcl := strings.NewReplacer("${EDGE_ORIGIN_HOST}", host, "${EDGE_ORIGIN_PORT}", port).Replace(string(tmpl))
	vclPath := filepath.Join(dir, "shopcast.vcl")
	if err := os.WriteFile(vclPath, []byte(vcl), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-F", "-a", listen, "-f", vclPath, "-n", filepath.Join(dir, "varnish"), "-s", "malloc,64m", "-T", "none"}
	if os.Geteuid() == 0 {
		// As root varnishd drops to its own users by default (-j unix),
		// who cannot enter the test's temp dir.
		args = append(args, "-j", "none")
	}
	out := &e2etest.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("varnishd output:\n%s", out.String())
		}
	})
}

// countingProxy sits between the edge and the origin and records every
// request it forwards: what the origin saw.
type countingProxy struct {
	addr string
	mu   sync.Mutex
	reqs []originRequest
}

type originRequest struct {
	path string
	at   time.Time
}

func startCountingProxy(t *testing.T, originAddr string) *countingProxy {
	t.Helper()
	target, err := url.Parse("http://" + originAddr)
	if err != nil {
		t.Fatal(err)
	}
	cp := &countingProxy{}
	proxy := &httputil.ReverseProxy{
		// Rewrite, not Director: no X-Forwarded-For added.
		Rewrite:      func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cp.mu.Lock()
		cp.reqs = append(cp.reqs, originRequest{path: r.URL.Path, at: time.Now()})
		cp.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	cp.addr = ln.Addr().String()
	return cp
}

func (cp *countingProxy) reset() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.reqs = nil
}

func (cp *countingProxy) requests() []originRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]originRequest(nil), cp.reqs...)
}

package e2e

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// An edge is a CDN cache from Debian's packages, run from the repository's
// config in deploy/, in front of an origin on loopback.
type edge struct {
	name string
	// bin is the program, looked up in PATH and then in /usr/sbin (not in
	// a non-root user's PATH on Debian).
	bin string
	// pkg is the Debian package that has it.
	pkg string
	// start runs the edge in dir, listening on listen and pulling from
	// origin (both host:port). It returns once the process is started.
	start func(t *testing.T, bin, dir, listen, origin string) *edgeProc
}

var edges = []edge{
	{name: "nginx", bin: "nginx", pkg: "nginx-light", start: startNginx},
	{name: "varnish", bin: "varnishd", pkg: "varnish", start: startVarnish},
}

// lookBin finds name in PATH or /usr/sbin.
func lookBin(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	if p2 := filepath.Join("/usr/sbin", name); isExecutable(p2) {
		return p2, nil
	}
	return "", err
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// edgeProc is a running edge; it is stopped at the test's cleanup.
type edgeProc struct {
	cmd *exec.Cmd
	out *e2etest.Buffer
	// logs are files whose tail is shown when the test fails.
	logs []string
}

// render reads a deploy/ template and replaces its ${NAME} placeholders;
// a placeholder left unset fails the test.
func render(t *testing.T, tmpl string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, "${"+k+"}", v)
	}
	s := strings.NewReplacer(pairs...).Replace(string(b))
	// Only placeholder lines count: the templates' comments show
	// envsubst command lines that name them too.
	for line := range strings.SplitSeq(s, "\n") {
		code, _, _ := strings.Cut(line, "#")
		if i := strings.Index(code, "${EDGE_"); i >= 0 {
			t.Fatalf("%s: placeholder left unset: %s", tmpl, strings.TrimSpace(line))
		}
	}
	return s
}

// startNginx runs deploy/nginx/shopcast-edge.conf in the foreground from
// the private prefix dir, as TOOLING.md's recipe does.
func startNginx(t *testing.T, bin, dir, listen, origin string) *edgeProc {
	t.Helper()
	user := "nobody"
	if os.Geteuid() == 0 {
		// The workers write the cache under the test's temp dir, which
		// only root may enter. Not root: nginx ignores the directive.
		user = "root"
	}
	conf := render(t, "../deploy/nginx/shopcast-edge.conf", map[string]string{
		"EDGE_USER":   user,
		"EDGE_LISTEN": listen,
		"EDGE_ORIGIN": origin,
	})
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	p := &edgeProc{
		cmd:  exec.Command(bin, "-p", dir+"/", "-c", confPath, "-e", errLog),
		out:  &e2etest.Buffer{},
		logs: []string{errLog},
	}
	p.run(t, syscall.SIGQUIT)
	return p
}

// startVarnish runs deploy/varnish/shopcast.vcl with varnishd in the
// foreground, its working dir (-n) in dir.
func startVarnish(t *testing.T, bin, dir, listen, origin string) *edgeProc {
	t.Helper()
	host, port, err := net.SplitHostPort(origin)
	if err != nil {
		t.Fatal(err)
	}
	vcl := render(t, "../deploy/varnish/shopcast.vcl", map[string]string{
		"EDGE_ORIGIN_HOST": host,
		"EDGE_ORIGIN_PORT": port,
	})
	vclPath := filepath.Join(dir, "shopcast.vcl")
	if err := os.WriteFile(vclPath, []byte(vcl), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-F", "-a", listen, "-f", vclPath, "-n", filepath.Join(dir, "varnish"),
		"-s", "malloc,64m", "-T", "none"}
	if os.Geteuid() == 0 {
		// As root varnishd drops to its varnish/vcache users by default
		// (-j unix), who cannot enter the test's temp dir.
		args = append(args, "-j", "none")
	}
	p := &edgeProc{cmd: exec.Command(bin, args...), out: &e2etest.Buffer{}}
	p.run(t, syscall.SIGTERM)
	return p
}

// run starts the process and stops it at cleanup with stop, then SIGKILL.
func (p *edgeProc) run(t *testing.T, stop os.Signal) {
	t.Helper()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(stop)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(p.cmd.Path), e2etest.Tail(p.out.String(), 3000))
			for _, f := range p.logs {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", f, e2etest.Tail(string(b), 3000))
			}
		}
	})
}

// originRequest is one request that reached the origin.
type originRequest struct {
	path, query string
	at          time.Time
}

// countingProxy is a reverse proxy between an edge and the origin that
// records every request it forwards: what the origin saw.
type countingProxy struct {
	addr string
	mu   sync.Mutex
	reqs []originRequest
	// cacheControl is the Cache-Control the origin sent, by request URI.
	cacheControl map[string]string
}

func startCountingProxy(t *testing.T, origin string) *countingProxy {
	t.Helper()
	target, err := url.Parse("http://" + origin)
	if err != nil {
		t.Fatal(err)
	}
	cp := &countingProxy{cacheControl: map[string]string{}}
	proxy := &httputil.ReverseProxy{
		// Rewrite, not Director: no X-Forwarded-For, the request goes on
		// as the edge sent it.
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			cp.mu.Lock()
			cp.cacheControl[resp.Request.URL.RequestURI()] = resp.Header.Get("Cache-Control")
			cp.mu.Unlock()
			return nil
		},
		// Quiet: at the end of a run the viewers cancel requests in flight.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
		Transport: &http.Transport{
			// Pass Accept-Encoding and the body through untouched.
			DisableCompression:  true,
			MaxIdleConnsPerHost: 1000,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cp.mu.Lock()
		cp.reqs = append(cp.reqs, originRequest{path: r.URL.Path, query: r.URL.RawQuery, at: time.Now()})
		cp.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	cp.addr = ln.Addr().String()
	return cp
}

// reset forgets the requests so far.
func (cp *countingProxy) reset() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.reqs = nil
}

// originCacheControl returns the Cache-Control the origin sent for uri.
func (cp *countingProxy) originCacheControl(uri string) (string, bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	v, ok := cp.cacheControl[uri]
	return v, ok
}

// requests returns a copy of the requests so far.
func (cp *countingProxy) requests() []originRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]originRequest(nil), cp.reqs...)
}

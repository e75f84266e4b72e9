package cluster

import (
	"context"
	"fmt"
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

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// counter is a reverse proxy in front of one node that counts the part
// requests reaching it, by URI. Its target is set once the node listens.
type counter struct {
	addr   string
	target atomic.Pointer[url.URL]
	mu     sync.Mutex
	parts  map[string]int
}

func startCounter(t *testing.T) *counter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{addr: ln.Addr().String(), parts: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(c.target.Load()) },
		FlushInterval: -1,
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m4s") && strings.Contains(r.URL.Path, "/part") {
			c.mu.Lock()
			c.parts[r.URL.Path]++
			c.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

// startVarnishCluster runs deploy/varnish/shopcast-cluster.vcl in front of
// the three origins (host:port) and returns its address.
func startVarnishCluster(t *testing.T, origins []string) string {
	t.Helper()
	bin, err := exec.LookPath("varnishd")
	if err != nil {
		bin = "/usr/sbin/varnishd"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("varnishd is required (make deps installs varnish)")
	}
	b, err := os.ReadFile("../../deploy/varnish/shopcast-cluster.vcl")
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for i, o := range origins {
		h, p, _ := net.SplitHostPort(o)
		pairs = append(pairs, fmt.Sprintf("${EDGE_ORIGIN%d_HOST}", i+1), h, fmt.Sprintf("${EDGE_ORIGIN%d_PORT}", i+1), p)
	}
	vcl := strings.NewReplacer(pairs...).Replace(string(b))
	if strings.Contains(vcl, "${EDGE_") {
		t.Fatal("a placeholder of shopcast-cluster.vcl is left unset")
	}
	dir := t.TempDir()
	vclPath := filepath.Join(dir, "shopcast.vcl")
	if err := os.WriteFile(vclPath, []byte(vcl), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	args := []string{"-F", "-a", listen, "-f", vclPath, "-n", filepath.Join(dir, "varnish"), "-s", "malloc,64m", "-T", "none"}
	if os.Geteuid() == 0 {
		args = append(args, "-j", "none")
	}
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	e2etest.WaitUntil(t, 20*time.Second, "varnish to listen", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return listen
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// llViewer follows the playlist through the edge with blocking reloads
// and fetches each new part, as an LL-HLS player does, counting parts.
func llViewer(ctx context.Context, base string, parts *atomic.Int64, errs chan<- error) {
	client := &http.Client{Timeout: 15 * time.Second}
	fetch := func(u string) ([]byte, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d", u, resp.StatusCode)
		}
		return []byte(b.String()), nil
	}
	q := "stream.m3u8"
	for ctx.Err() == nil {
		b, err := fetch(base + q)
		if err != nil {
			if ctx.Err() == nil {
				errs <- err
			}
			return
		}
		pl, err := playlist.Unmarshal(b)
		m, ok := pl.(*playlist.Media)
		if err != nil || !ok || len(m.Parts) == 0 {
			q = "stream.m3u8"
			continue
		}
		if _, err := fetch(base + m.Parts[len(m.Parts)-1].URI); err != nil {
			if ctx.Err() == nil {
				errs <- err
			}
			return
		}
		parts.Add(1)
		msn, part := nextPart(m)
		q = fmt.Sprintf("stream.m3u8?_HLS_msn=%d&_HLS_part=%d", msn, part)
	}
}

// TestClusterBehindVarnish plays a stream with 200 LL-HLS viewers through
// a Varnish edge whose round-robin director spreads them over the three
// nodes: the owner sees about one request per part for the edge, not one
// per viewer, whichever node the edge asked.
func TestClusterBehindVarnish(t *testing.T) {
	const viewers = 200
	front := startCounter(t)
	nodes := startCluster(t,
		member{edit: func(c *server.Config) { c.ClusterAdvertise = "http://" + front.addr }},
		member{}, member{})
	u, _ := url.Parse(nodes[0].HTTP)
	front.target.Store(u)
	publish(t, t.Context(), nodes[0], "shop")
	origins := []string{front.addr, strings.TrimPrefix(nodes[1].HTTP, "http://"), strings.TrimPrefix(nodes[2].HTTP, "http://")}
	edge := "http://" + startVarnishCluster(t, origins) + "/live/shop/"
	e2etest.WaitUntil(t, 20*time.Second, "the stream through varnish", func() bool {
		code, _, _ := tryGet(edge + "stream.m3u8")
		return code == http.StatusOK
	})

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var parts atomic.Int64
	errs := make(chan error, viewers)
	var wg sync.WaitGroup
	for range viewers {
		wg.Go(func() { llViewer(ctx, edge, &parts, errs) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("viewer: %v", err)
	}
	front.mu.Lock()
	defer front.mu.Unlock()
	total := 0
	for _, n := range front.parts {
		total += n
	}
	if len(front.parts) == 0 || parts.Load() < viewers*10 {
		t.Fatalf("the owner served %d parts, the viewers fetched %d", len(front.parts), parts.Load())
	}
	perPart := float64(total) / float64(len(front.parts))
	t.Logf("%d viewers fetched %d parts through varnish over 3 nodes; the owner got %d requests for %d parts: %.2f per part",
		viewers, parts.Load(), total, len(front.parts), perPart)
	if perPart > 3 {
		t.Errorf("the owner got %.2f requests per part, not about one per edge", perPart)
	}
}

// TestClusterNginxConfig checks the nginx multi-origin variant with nginx
// -t.
func TestClusterNginxConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("nginx is required (make deps installs nginx-light)")
	}
	b, err := os.ReadFile("../../deploy/nginx/shopcast-cluster-edge.conf")
	if err != nil {
		t.Fatal(err)
	}
	user := "nobody"
	if os.Geteuid() == 0 {
		user = "root"
	}
	conf := strings.NewReplacer("${EDGE_USER}", user, "${EDGE_LISTEN}", freeAddr(t),
		"${EDGE_ORIGIN1}", "127.0.0.1:18081", "${EDGE_ORIGIN2}", "127.0.0.1:18082", "${EDGE_ORIGIN3}", "127.0.0.1:18083").Replace(string(b))
	dir := t.TempDir()
	p := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir+"/", "-c", p, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

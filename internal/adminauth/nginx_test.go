package adminauth_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/adminauth"
)

// TestRuleBehindNginx puts a real nginx on this host in front of the
// token-less rule: with nginx's defaults (a bare proxy_pass, which adds no
// proxy header) and with the usual X-Forwarded-For/X-Real-IP lines, the
// request nginx forwards is refused; with a token it is served.
func TestRuleBehindNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	for _, tc := range []struct {
		name   string
		extra  string // lines in the location block
		token  string
		status int
	}{
		{"bare proxy_pass", "", "", 403},
		{"with X-Forwarded-For and X-Real-IP", "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\nproxy_set_header X-Real-IP $remote_addr;", "", 403},
		{"with a token", "proxy_http_version 1.1;", "t0ken", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upstream := strings.TrimPrefix(startServer(t, adminauth.Rule{Token: tc.token}), "http://")
			front := startNginx(t, nginx, upstream, tc.extra)
			req, _ := http.NewRequest("POST", "http://"+front+"/api/v1/x", strings.NewReader("{}"))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("through nginx: %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			t.Logf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		})
	}
}

// startNginx runs nginx from a private prefix, proxying a free port on
// 127.0.0.1 to upstream, and returns its address.
func startNginx(t *testing.T, nginx, upstream, extra string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  server {
    listen %[2]s;
    location / {
      proxy_pass http://%[3]s;
      %[4]s
    }
  }
}
`, dir, addr, upstream, extra)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(20 * time.Millisecond) // polling for the listener, not synchronising with it
	}
}

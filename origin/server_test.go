package origin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// startServer starts s on a loopback port and shuts it down at the end of
// the test.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	s.Address = "127.0.0.1:0"
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s.Addr().String()
}

func fetch(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestServerProtocolsCleartext(t *testing.T) {
	addr := startServer(t, &Server{Source: &fakeSource{resp: playlistResponse(packager.KindPlaylist)}})
	url := "http://" + addr + "/live/shop/stream.m3u8"

	var h2cOnly http.Protocols
	h2cOnly.SetUnencryptedHTTP2(true)
	clients := map[string]struct {
		client *http.Client
		proto  string
	}{
		"http/1.1": {&http.Client{Transport: &http.Transport{}}, "HTTP/1.1"},
		// HTTP/2 over cleartext with prior knowledge (h2c).
		"h2c": {&http.Client{Transport: &http.Transport{Protocols: &h2cOnly}}, "HTTP/2.0"},
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			// An idle HTTP/2 client would hold Shutdown up for the GOAWAY timeout.
			defer c.client.CloseIdleConnections()
			resp, body := fetch(t, c.client, url)
			if resp.StatusCode != 200 || body != testPlaylist {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			if resp.Proto != c.proto {
				t.Errorf("proto %s, want %s", resp.Proto, c.proto)
			}
			if resp.Header.Get("Cache-Control") != "public, max-age=1" {
				t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

// TestServerH2CPreface checks h2c by hand: after the HTTP/2 connection
// preface (RFC 9113 3.4) the server's first frame is SETTINGS.
func TestServerH2CPreface(t *testing.T) {
	addr := startServer(t, &Server{Source: &fakeSource{}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	preface := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	emptySettings := []byte{0, 0, 0, 0x4, 0, 0, 0, 0, 0} // length 0, type SETTINGS, stream 0
	if _, err := c.Write(append([]byte(preface), emptySettings...)); err != nil {
		t.Fatal(err)
	}
	var hdr [9]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if hdr[3] != 0x4 || hdr[5]|hdr[6]|hdr[7]|hdr[8] != 0 {
		t.Fatalf("first frame header %x, want SETTINGS on stream 0", hdr)
	}
}

func TestServerProtocolsTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	addr := startServer(t, &Server{
		Source:  &fakeSource{resp: playlistResponse(packager.KindPlaylist)},
		TLSCert: certFile, TLSKey: keyFile,
	})
	url := "https://" + addr + "/live/shop/stream.m3u8"
	tlsConfig := &tls.Config{RootCAs: pool, ServerName: "localhost"}

	var h1 http.Protocols
	h1.SetHTTP1(true)
	for _, tt := range []struct {
		name  string
		tr    *http.Transport
		proto string
	}{
		// Each transport gets its own tls.Config: an HTTP/2 transport
		// writes its NextProtos into the one it is given.
		{"h2", &http.Transport{TLSClientConfig: tlsConfig.Clone(), ForceAttemptHTTP2: true}, "HTTP/2.0"},
		{"http/1.1", &http.Transport{TLSClientConfig: tlsConfig.Clone(), Protocols: &h1}, "HTTP/1.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.tr.CloseIdleConnections()
			resp, body := fetch(t, &http.Client{Transport: tt.tr}, url)
			if resp.StatusCode != 200 || body != testPlaylist || resp.Proto != tt.proto {
				t.Fatalf("%d %s %q", resp.StatusCode, resp.Proto, body)
			}
		})
	}

	// Cleartext on the TLS port does not reach the handler.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /live/shop/stream.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
	reply, _ := io.ReadAll(c)
	if len(reply) > 0 && string(reply[:4]) == "HTTP" && string(reply[9:12]) == "200" {
		t.Errorf("cleartext request answered: %q", reply)
	}
}

func TestServerStartErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Address: ln.Addr().String(), Source: &fakeSource{}}
	if err := s.Start(); err == nil {
		_ = s.Shutdown(context.Background())
		t.Fatal("Start on a bound port succeeded")
	}
	if s.Addr() != nil {
		t.Errorf("Addr %v after a failed Start", s.Addr())
	}
	s = &Server{Address: "127.0.0.1:0", Source: &fakeSource{}, TLSCert: "/nonexistent.pem", TLSKey: "/nonexistent.key"}
	if err := s.Start(); err == nil {
		_ = s.Shutdown(context.Background())
		t.Fatal("Start with a missing certificate succeeded")
	}
	if err := (&Server{Address: "127.0.0.1:0"}).Start(); err == nil {
		t.Fatal("Start without a Source succeeded")
	}
}

// TestServerShutdownAnswersBlocked checks that Shutdown lets a blocked
// playlist request finish with its answer.
func TestServerShutdownAnswersBlocked(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := &Server{Source: sourceFunc(func(ctx context.Context, req packager.Request) (*packager.Response, error) {
		close(entered)
		<-release
		return playlistResponse(packager.KindBlockingPlaylist), nil
	})}
	addr := startServer(t, s)

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/live/shop/stream.m3u8?_HLS_msn=7")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-entered

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	// New connections are refused once Shutdown has closed the listener.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections during Shutdown")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	close(release)

	r := <-got
	if r.err != nil || r.status != 200 || r.body != testPlaylist {
		t.Fatalf("blocked request: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestServerShutdownTimeout checks that Shutdown gives up on requests
// still blocked when its context ends, and cancels them.
func TestServerShutdownTimeout(t *testing.T) {
	entered, cancelled := make(chan struct{}), make(chan struct{})
	s := &Server{Source: sourceFunc(func(ctx context.Context, req packager.Request) (*packager.Response, error) {
		close(entered)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})}
	addr := startServer(t, s)
	go func() {
		resp, err := http.Get("http://" + addr + "/live/shop/stream.m3u8?_HLS_msn=7")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked request was not cancelled")
	}
}

// selfSigned writes a certificate for localhost and 127.0.0.1 and returns
// its files and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

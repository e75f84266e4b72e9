// Package origin serves the packager's LL-HLS files over HTTP as a
// CDN-friendly origin: strict stream paths, the LL-HLS delivery directives,
// Cache-Control from RFC 8216bis appendix B, gzip playlists, byte ranges on
// media, CORS, and HTTP/2 over TLS or cleartext (h2c).
package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/shopcast/shopcast/internal/httpserve"
)

// Server is the HTTP origin. Set its fields, then call Start, or mount
// Handler on a server of your own.
type Server struct {
	// Address is the TCP listen address. It defaults to ":8080".
	Address string

	// Source answers requests for stream files; the packager's Manager
	// implements it. It is required.
	Source Source

	// Logger receives serve errors and, at debug level, one access-log line
	// per request. It defaults to discarding everything.
	Logger *slog.Logger

	// CORSOrigin is the Access-Control-Allow-Origin value sent with stream
	// files. It defaults to "*".
	CORSOrigin string

	// TLSCert and TLSKey are PEM files. When both are set the server speaks
	// TLS, offering HTTP/2 and HTTP/1.1 by ALPN; otherwise it speaks
	// cleartext HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
	TLSCert string
	TLSKey  string

	// ReadHeaderTimeout bounds reading a request's headers. It defaults to 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request. It defaults to 15s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end of
	// its response. It must exceed the longest blocking playlist wait (3x the
	// target duration, RFC 8216bis 6.2.5.2). It defaults to 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. It defaults
	// to 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the size of request headers. It defaults to 64 KiB.
	MaxHeaderBytes int

	// PlayAuth, when set, requires a signed play token on every stream file
	// (see PlayAuth). It defaults to nil: stream files are public.
	PlayAuth *PlayAuth

	// Observer, when set, is told how each stream-file request was
	// answered, for metrics. It defaults to nil.
	Observer Observer

	// StreamFiles serves files of every stream that the packager does not
	// make, by file name: /live/{name}/{file} goes to StreamFiles[file],
	// which reads the name with r.PathValue("name") and checks any play
	// token itself. It defaults to none.
	StreamFiles map[string]http.Handler
	// Posters, when set, answers /live/{name}/poster.jpg. It defaults to
	// nil: the poster is a 404.
	Posters Posters
	// PosterMaxAge is the poster's Cache-Control max-age. It defaults to
	// 5s.
	PosterMaxAge time.Duration
	// Forwarder, when set, answers the requests for streams another
	// server of a cluster owns (proxy.go). It defaults to nil: a single
	// server, which pays nothing for it.
	Forwarder Forwarder
	// LocalFiles are like StreamFiles, but this server answers them
	// itself even for a stream another server of its cluster owns: what
	// they say is this server's own view (the steering manifest, which must
	// answer when the stream's owner has died). It defaults to none.
	LocalFiles map[string]http.Handler
	// RewriteMultivariant, when set, rewrites every multivariant playlist
	// before it is sent (Content Steering, package steering): it gets the
	// stream name, the request's escaped path and the body, and returns
	// the new body. It defaults to nil: the packager's playlist as is.
	RewriteMultivariant func(stream, requestPath string, body []byte) []byte

	hdr headerCache

	mu  sync.Mutex // guards mux
	mux *http.ServeMux
	run httpserve.Runner
}

// Defaults of the Server fields.
const (
	defaultAddress           = ":8080"
	defaultCORSOrigin        = "*"
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 15 * time.Second
	defaultWriteTimeout      = 30 * time.Second
	defaultIdleTimeout       = 120 * time.Second
	defaultMaxHeaderBytes    = 64 << 10
)

// Handle mounts an extra handler, such as metrics or an API, on the server.
// Patterns follow http.ServeMux. Paths under /live/ belong to the stream
// files and never reach these handlers. Handle may be called before or after
// Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.handlers().Handle(pattern, h)
}

// handlers returns the mux of /healthz and the mounted handlers.
func (s *Server) handlers() *http.ServeMux {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mux == nil {
		s.mux = http.NewServeMux()
		s.mux.HandleFunc("GET /healthz", serveHealth)
	}
	return s.mux
}

// Handler returns the server's HTTP handler: stream files under
// /live/{name}/{file}, /healthz, and whatever was mounted with Handle.
func (s *Server) Handler() http.Handler {
	mux := s.handlers()
	route := func(w http.ResponseWriter, r *http.Request) {
		switch {
		case serveFileOf(s.LocalFiles, w, r):
		case s.Forwarder != nil && s.forward(w, r):
		case s.serveStreamFile(w, r):
		case !isLivePath(r):
			mux.ServeHTTP(w, r)
		case s.Observer != nil:
			s.observeLive(w, r)
		default:
			s.serveLive(w, r)
		}
	}
	// The chain down to serveLive is kept shallow: net/http serializes a
	// response's header deep inside it (chunkWriter.writeHeader alone takes
	// 2.8 KB of stack), and a connection goroutine whose stack once grew to
	// 16 KiB keeps it while it waits in its next blocking request: 8 KiB
	// more per viewer than a chain that stays within 8 KiB.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer s.recoverPanic(r)
		if s.log().Enabled(r.Context(), slog.LevelDebug) {
			s.logAccess(w, r, route)
			return
		}
		route(w, r)
	})
}

// recoverPanic logs a panic of a request's handler with the request, and
// aborts only that request's connection (HTTP/1.1) or stream (HTTP/2).
func (s *Server) recoverPanic(r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v != http.ErrAbortHandler {
		s.log().Error("panic serving request", "remote", r.RemoteAddr, "path", r.URL.Path,
			"err", v, "stack", string(debug.Stack()))
	}
	panic(http.ErrAbortHandler) // net/http closes the connection without logging again
}

func serveHealth(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "2")
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("ok"))
	}
}

// Start binds Address and serves in the background. It returns the bind
// error, or the error loading the TLS certificate.
func (s *Server) Start() error {
	if s.Source == nil {
		return errors.New("origin: Source is nil")
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return errors.New("origin: TLSCert and TLSKey must be set together")
	}
	if s.PlayAuth != nil {
		if err := s.PlayAuth.Check(); err != nil {
			return err
		}
	}
	log := s.log()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: or(s.ReadHeaderTimeout, defaultReadHeaderTimeout),
		ReadTimeout:       or(s.ReadTimeout, defaultReadTimeout),
		WriteTimeout:      or(s.WriteTimeout, defaultWriteTimeout),
		IdleTimeout:       or(s.IdleTimeout, defaultIdleTimeout),
		MaxHeaderBytes:    or(s.MaxHeaderBytes, defaultMaxHeaderBytes),
		// Handshake failures and malformed requests from scanners are noise.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	useTLS := s.TLSCert != ""
	if useTLS {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return fmt.Errorf("origin: load TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		}
		protos.SetHTTP2(true)
	} else {
		// HTTP/2 with prior knowledge on the cleartext port, for CDNs and
		// load balancers that speak h2c to their origins.
		protos.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &protos

	ln, err := net.Listen("tcp", or(s.Address, defaultAddress))
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	serve := srv.Serve
	if useTLS {
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
	} else {
		ln = &coalescingListener{Listener: ln}
		srv.ConnContext = withConn
	}
	s.run.Serve(srv, ln, serve, log, "origin")
	return nil
}

// Addr returns the bound address, or nil before Start.
func (s *Server) Addr() net.Addr { return s.run.Addr() }

// Shutdown stops accepting connections and waits for the requests in
// flight, blocked playlist requests included, to be answered. When ctx ends
// first it closes the remaining connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error { return s.run.Shutdown(ctx) }

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// RTMPServer receives publishers over RTMP (OBS, ffmpeg, hardware encoders)
// at rtmp://HOST:1935/live/KEY and hands each publication to Sink.
// Viewers are served over HLS only: RTMP play requests are refused.
type RTMPServer struct {
	// Address is the TCP address to listen on. It defaults to ":1935".
	Address string
	// Sink receives the publications. It is required.
	Sink Sink
	// Auth maps stream keys to public stream names. It defaults to
	// authentication off (the key is the public name).
	Auth *Auth
	// Registry tracks who publishes each name, so that a publisher coming
	// back replaces its stale session. Share one Registry between the RTMP
	// and RTSP servers. It defaults to a Registry of this server only.
	Registry *Registry
	// Logger receives connection events. It defaults to slog.Default().
	Logger *slog.Logger
	// ReadTimeout closes a connection that sends nothing for this long (a
	// stalled encoder, a half-open TCP connection); it also bounds each
	// write. It defaults to 10s.
	ReadTimeout time.Duration
	// MaxConns caps concurrent connections; connections beyond it are closed
	// at once. It defaults to 200.
	MaxConns int
	// MaxAMFMessageSize is the largest AMF message (command, or data such as
	// onMetaData and onCuePoint) a client may send; a larger one closes the
	// connection. Real ones are well under 4 KiB; the cap keeps gortmplib's
	// recursive AMF decoder from overflowing the stack, which would crash
	// the process. It defaults to 64 KiB.
	MaxAMFMessageSize int

	// Effective configuration, set by Start.
	log         *slog.Logger
	auth        *Auth
	registry    *Registry
	readTimeout time.Duration
	maxConns    int
	maxAMF      int

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*rtmpConn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// Start binds the listener and starts accepting connections. It returns the
// bind error, if any.
func (s *RTMPServer) Start() error {
	if s.Sink == nil {
		return errors.New("rtmp: Sink is nil")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil || s.closing {
		return errors.New("rtmp: server already started")
	}

	s.log = s.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.auth = s.Auth
	if s.auth == nil {
		s.auth = &Auth{}
	}
	s.registry = s.Registry
	if s.registry == nil {
		s.registry = NewRegistry(s.log)
	}
	s.readTimeout = s.ReadTimeout
	if s.readTimeout <= 0 {
		s.readTimeout = 10 * time.Second
	}
	s.maxConns = s.MaxConns
	if s.maxConns <= 0 {
		s.maxConns = 200
	}
	s.maxAMF = s.MaxAMFMessageSize
	if s.maxAMF <= 0 {
		s.maxAMF = 64 * 1024
	}
	addr := s.Address
	if addr == "" {
		addr = ":1935"
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("rtmp: %w", err)
	}
	s.ln = ln
	s.conns = make(map[*rtmpConn]struct{})

	s.wg.Add(1)
	go s.acceptLoop(ln)

	s.log.Info("rtmp listening", "proto", "rtmp", "addr", ln.Addr().String())
	return nil
}

// Addr returns the listener's address, or nil before Start.
func (s *RTMPServer) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting, closes every connection (each publication is
// closed) and waits for the connection goroutines to end.
func (s *RTMPServer) Close() {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()

	s.wg.Wait()
}

func (s *RTMPServer) acceptLoop(ln net.Listener) {
	defer s.wg.Done()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("rtmp accept failed", "proto", "rtmp", "err", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0

		c := newRTMPConn(s, nc)
		if !s.addConn(c) {
			continue
		}
		go func() {
			defer s.wg.Done()
			defer s.removeConn(c)
			c.run()
		}()
	}
}

// addConn registers c, or closes it when the server is closing or full.
func (s *RTMPServer) addConn(c *rtmpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		c.nc.Close()
		return false
	}
	if len(s.conns) >= s.maxConns {
		c.nc.Close()
		s.log.Warn("connection refused: too many connections",
			"proto", "rtmp", "remote", c.remote, "max_conns", s.maxConns)
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *RTMPServer) removeConn(c *rtmpConn) {
	c.nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *RTMPServer) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

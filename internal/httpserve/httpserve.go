// Package httpserve runs an http.Server on its listener in the background
// and shuts it down: the lifecycle the origin and the metrics server share.
package httpserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// Runner holds a server started by Serve. The zero value is ready to use;
// before Serve, Addr returns nil and Shutdown does nothing.
type Runner struct {
	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Serve runs serve(ln) (srv.Serve, or a closure calling srv.ServeTLS) in
// the background. A stop other than by Shutdown is logged as "what
// stopped".
func (r *Runner) Serve(srv *http.Server, ln net.Listener, serve func(net.Listener) error, log *slog.Logger, what string) {
	done := make(chan struct{})
	r.mu.Lock()
	r.srv, r.ln, r.done = srv, ln, done
	r.mu.Unlock()
	go func() {
		defer close(done)
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" stopped", "err", err)
		}
	}()
}

// Addr returns the bound address, or nil before Serve.
func (r *Runner) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return nil
	}
	return r.ln.Addr()
}

// Shutdown stops accepting connections and waits for the requests in
// flight to be answered. When ctx ends first it closes the remaining
// connections and returns ctx's error. It returns once the server has
// stopped.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	srv, done := r.srv, r.done
	r.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-done
	return err
}

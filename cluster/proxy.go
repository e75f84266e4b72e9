package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// ForwardedHeader marks a request one node proxies to another, with the
// proxying node's name. A node never proxies a request that carries it
// (two nodes that disagree for a moment about the owner do not bounce a
// request between them): it serves it itself.
const ForwardedHeader = "X-Shopcast-Forwarded"

// ProxyStats counts the requests the proxy was offered, by outcome.
type ProxyStats struct {
	// Proxied were answered by the owner (any status it gave),
	// Unreachable got a 503 because the owner did not answer and no other
	// member holds the stream, Moving a 503 while the stream moved between
	// nodes (or no live owner was known).
	Proxied, Unreachable, Moving uint64
}

// Proxy serves the requests for streams another node owns by proxying
// them to the owner's advertised URL, and implements origin.Forwarder. A
// blocking playlist or part request is held open upstream as long as the
// client holds it (the client's context is the upstream request's); bodies
// are streamed as they come; the owner's headers (Cache-Control, ETag,
// Content-Type, CORS) are kept, hop-by-hop ones dropped (RFC 9110 7.6.1).
// A stream whose owner died and which no node has taken yet answers 503
// with Retry-After; one nobody owns is left to this node (404 unless its
// packager or recorder has it). An owner that does not answer is reported
// to the registry (Registry.Suspect) and the owner resolved again with the
// members: a GET goes once to the new owner if there is one, else it
// answers 503 with Retry-After.
//
// Known limit: the owner's per-client cap on blocked requests
// (max_blocked_per_client) sees every viewer behind one proxying node as
// one client.
type Proxy struct {
	reg *Registry
	log *slog.Logger
	rp  *httputil.ReverseProxy

	proxied, unreachable, moving atomic.Uint64
}

type targetKey struct{}

// retriedKey marks a request already sent again after its owner did not
// answer.
type retriedKey struct{}

// proxyTarget is where a request goes: the owner's node and URL.
type proxyTarget struct {
	node string
	url  *url.URL
}

// NewProxy returns a proxy that finds owners in reg. DialTimeout bounds
// connecting to an owner (default 2s).
func NewProxy(reg *Registry, dialTimeout time.Duration) *Proxy {
	if dialTimeout <= 0 {
		dialTimeout = 2 * time.Second
	}
	p := &Proxy{reg: reg, log: reg.log}
	tr := &http.Transport{
		Proxy:       nil, // node to node, never through an HTTP proxy
		DialContext: (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		// Every viewer behind this node may hold a blocking request to
		// the owner: keep the connections for reuse.
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		// The owner's gzip reaches the client as it is.
		DisableCompression: true,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(targetKey{}).(proxyTarget).url)
			pr.SetXForwarded()
			pr.Out.Header.Set(ForwardedHeader, reg.node.Name())
		},
		Transport: tr,
		// Parts and playlists reach the client as the owner writes them.
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		ModifyResponse: func(*http.Response) error {
			p.proxied.Add(1)
			return nil
		},
		ErrorHandler: p.unreachableOwner,
	}
	return p
}

// Stats returns the counters.
func (p *Proxy) Stats() ProxyStats {
	return ProxyStats{Proxied: p.proxied.Load(), Unreachable: p.unreachable.Load(), Moving: p.moving.Load()}
}

// Forward implements origin.Forwarder.
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request, name string) bool {
	o, st := p.reg.Resolve(r.Context(), name)
	switch st {
	case OwnedHere:
		// Claimed, but the publisher's tracks are still being probed:
		// the stream is starting here, not missing.
		if active := p.reg.cfg.Active; active != nil && strings.HasPrefix(r.URL.Path, "/live/") && !active(name) {
			p.moving.Add(1)
			w.Header().Set("Retry-After", "1")
			refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("stream %s is starting on this node; retry", name))
			return true
		}
	case OwnedElsewhere:
		if r.Header.Get(ForwardedHeader) != "" {
			return false // never bounced back: served here
		}
		target, err := url.Parse(o.URL)
		if err != nil || target.Host == "" {
			p.unreachable.Add(1)
			refuse(w, http.StatusBadGateway, fmt.Sprintf("stream %s: node %s advertises no usable URL", name, o.Node))
			return true
		}
		p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, proxyTarget{node: o.Node, url: target})))
		return true
	case Moving:
		p.moving.Add(1)
		w.Header().Set("Retry-After", "1")
		refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("stream %s is moving to another node; retry", name))
		return true
	}
	return false
}

// unreachableOwner answers a request the owner did not answer: the owner
// is suspect, and the request goes once to the owner the members name
// now, if another; else 503 with Retry-After.
func (p *Proxy) unreachableOwner(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		return // the client left; nobody reads an answer
	}
	t, _ := r.Context().Value(targetKey{}).(proxyTarget)
	p.log.Warn("cluster: owner unreachable", "path", r.URL.Path, "owner", t.node, "err", err)
	p.reg.Suspect(t.node)
	name := streamOf(r.URL.Path)
	if r.Context().Value(retriedKey{}) == nil && name != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		o, st := p.reg.Resolve(r.Context(), name)
		if st == OwnedElsewhere && o.Node != t.node {
			if target, err := url.Parse(o.URL); err == nil && target.Host != "" {
				ctx := context.WithValue(r.Context(), retriedKey{}, true)
				ctx = context.WithValue(ctx, targetKey{}, proxyTarget{node: o.Node, url: target})
				p.rp.ServeHTTP(w, r.WithContext(ctx))
				return
			}
		}
	}
	p.unreachable.Add(1)
	w.Header().Set("Retry-After", "1")
	refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("the node that owns this stream (%s) does not answer and no other node holds it yet; retry", t.node))
}

// streamOf is the stream name of a /live/NAME/... or /recordings/NAME/...
// path, or "".
func streamOf(path string) string {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 3)
	if len(parts) < 2 || (parts[0] != "live" && parts[0] != "recordings") {
		return ""
	}
	return parts[1]
}

// refuse writes a short plain-text error that no cache keeps.
func refuse(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

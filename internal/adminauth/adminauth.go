// Package adminauth is the one rule every administrative HTTP endpoint of
// shopcast applies (the cue API today; recordings, signals and cluster
// administration when they come): a bearer token when one is configured, and
// without one, only requests made on this machine, directly, by something
// that is not a web page of another site.
//
// Why the token-less mode is so strict: a loopback source address proves
// only that the last hop is on this host. A reverse proxy, CDN agent or
// tunnel on the same host makes every client of the world look local, and a
// web page of any site, opened in a browser on the operator's machine, can
// send it requests too. Each of those leaves a trace that is refused here;
// the one that leaves none (a proxy configured to add no header and speak
// HTTP/1.1) is why docs/security.md says that a proxy on the same host
// requires a token.
package adminauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ErrUnauthorized is wrapped by the Refusal of a request without the
// configured token, or with a wrong one: answer 401 with the challenge.
var ErrUnauthorized = errors.New("bearer token required")

// ErrNotLocal is wrapped by the Refusal of a request in token-less mode that
// does not come directly from this machine: answer 403.
var ErrNotLocal = errors.New("no token is configured: only direct requests from this machine are served")

// Rule decides whether an administrative request may be served. The zero
// value is the token-less mode.
type Rule struct {
	// Token is the bearer token every request must carry (Authorization:
	// Bearer TOKEN). Empty means no token: only requests from a loopback
	// address that show no sign of a proxy and do not come from a web page
	// of another origin are served. It defaults to empty.
	Token string
	// Realm names the protection space in the WWW-Authenticate challenge.
	// It defaults to "shopcast".
	Realm string
}

// Refusal is why a request is refused, and how to answer it.
type Refusal struct {
	// Status is 401 (token missing or wrong) or 403 (token-less mode, the
	// request is not local).
	Status int
	// Challenge is the WWW-Authenticate value to send with a 401; empty
	// with a 403.
	Challenge string
	// Err wraps ErrUnauthorized or ErrNotLocal; its text is safe to show
	// to the client (it never holds a token).
	Err error
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// Check returns nil when req may be served, else the refusal.
func (a Rule) Check(req *http.Request) *Refusal {
	if a.Token != "" {
		tok, ok := Bearer(req.Header.Get("Authorization"))
		if ok && TokenEqual(tok, a.Token) {
			return nil
		}
		realm := a.Realm
		if realm == "" {
			realm = "shopcast"
		}
		// RFC 6750 3: a request without credentials gets the challenge
		// alone; one with a wrong token gets error="invalid_token".
		challenge := `Bearer realm="` + realm + `"`
		if ok {
			challenge += `, error="invalid_token"`
		}
		return &Refusal{Status: http.StatusUnauthorized, Challenge: challenge, Err: ErrUnauthorized}
	}
	if why := notLocal(req); why != "" {
		return &Refusal{Status: http.StatusForbidden, Err: fmt.Errorf("%w (%s); configure a token", ErrNotLocal, why)}
	}
	return nil
}

// Bearer extracts the token of an "Authorization: Bearer TOKEN" header; the
// scheme is case-insensitive (RFC 9110 11.1).
func Bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// TokenEqual compares in constant time, also hiding the token's length.
func TokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// ProxyHeaders are the request headers that proxies, load balancers and CDNs
// add. In token-less mode the presence of any of them refuses the request,
// even empty: an empty X-Forwarded-For is still a proxy's doing. Every
// header whose name starts with X-Forwarded- counts too.
var ProxyHeaders = []string{
	"Forwarded",                // RFC 7239
	"Via",                      // RFC 9110 7.6.3
	"Cdn-Loop",                 // RFC 8586
	"X-Real-Ip",                // nginx's usual proxy_set_header
	"True-Client-Ip",           // Akamai, Cloudflare Enterprise
	"Cf-Connecting-Ip",         // Cloudflare
	"Cf-Ray",                   // Cloudflare
	"Fastly-Client-Ip",         // Fastly
	"X-Client-Ip",              // various
	"X-Cluster-Client-Ip",      // Rackspace, Riverbed
	"Client-Ip",                // various
	"X-Originating-Ip",         // Microsoft
	"X-Remote-Ip",              // various
	"X-Remote-Addr",            // various
	"X-Envoy-External-Address", // Envoy
	"X-Amzn-Trace-Id",          // AWS load balancers
}

// notLocal says why req is not a direct request from this machine, or ""
// when it is one.
func notLocal(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Unmap().IsLoopback() {
		return "the client is not on loopback"
	}

	for _, h := range ProxyHeaders {
		if _, ok := req.Header[h]; ok {
			return "the request came through a proxy: it has " + h
		}
	}
	for h := range req.Header {
		if strings.HasPrefix(h, "X-Forwarded-") {
			return "the request came through a proxy: it has " + h
		}
	}
	// nginx's proxy_pass speaks HTTP/1.0 to its upstream unless told
	// otherwise, and adds no header above by default; command-line clients
	// and libraries speak HTTP/1.1 or later.
	if req.ProtoMajor < 1 || (req.ProtoMajor == 1 && req.ProtoMinor == 0) {
		return "HTTP/1.0, as a proxy on this host speaks by default"
	}

	// A web page of another site, opened in a browser on this machine, can
	// send requests to 127.0.0.1 too (CSRF; DNS rebinding gives the page a
	// name that resolves here). Browsers say where a request comes from:
	// Fetch Metadata (W3C) and Origin (RFC 6454 7), which they send with
	// every POST, PUT and DELETE.
	switch site := req.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "a browser sent it from a page of another site (Sec-Fetch-Site: " + site + ")"
	}
	if origins, ok := req.Header["Origin"]; ok {
		for _, o := range origins {
			if !loopbackOrigin(o) {
				return "a browser sent it from a page that is not served from this machine's loopback address"
			}
		}
	}
	return ""
}

// loopbackOrigin reports whether an Origin is http(s) on a loopback address
// or localhost. "null" (sandboxed frames, file: pages) is not.
func loopbackOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	return err == nil && addr.Unmap().IsLoopback()
}

// Wrap serves next only for requests that pass Check. A refused request is
// answered with Status, the challenge of a 401, Cache-Control: no-store and
// the JSON body {"error": "..."} that shopcast's APIs use for errors.
func (a Rule) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := a.Check(r)
		if ref == nil {
			next.ServeHTTP(w, r)
			return
		}
		ref.Write(w)
	})
}

// Write answers the refused request.
func (r *Refusal) Write(w http.ResponseWriter) {
	if r.Challenge != "" {
		w.Header().Set("WWW-Authenticate", r.Challenge)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.Status)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{r.Err.Error()})
	_, _ = w.Write(append(b, '\n'))
}

package telemetry

import (
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Readiness conditions the shopcast binary flips.
const (
	// ReadyListeners holds while the HTTP, RTMP and RTSP listeners are
	// bound and the server is not shutting down.
	ReadyListeners = "listeners"
	// ReadyCueStore holds while the cue store is open.
	ReadyCueStore = "cue_store"
)

// Ready is the readiness of the process for GET /readyz: 200 when every
// condition it was made with holds, 503 naming those that do not. Unlike
// /healthz (the process is up), it tells a load balancer or an orchestrator
// whether to send traffic.
type Ready struct {
	mu    sync.Mutex
	conds map[string]bool
}

// NewReady returns a Ready that waits for the named conditions, none of
// which holds yet.
func NewReady(conds ...string) *Ready {
	r := &Ready{conds: map[string]bool{}}
	for _, c := range conds {
		r.conds[c] = false
	}
	return r
}

// Set records whether cond holds. A condition NewReady was not given is
// added.
func (r *Ready) Set(cond string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conds[cond] = ok
}

// Check returns whether every condition holds, and the sorted names of those
// that do not.
func (r *Ready) Check() (ready bool, missing []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c, ok := range r.conds {
		if !ok {
			missing = append(missing, c)
		}
	}
	slices.Sort(missing)
	return len(missing) == 0, missing
}

// ServeHTTP answers GET and HEAD /readyz.
func (r *Ready) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ready, missing := r.Check()
	status, body := http.StatusOK, "ok\n"
	if !ready {
		status, body = http.StatusServiceUnavailable, "not ready: "+strings.Join(missing, ", ")+"\n"
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrNameInUse is returned by Registry.Admit when another publisher's session
// holds the name and the newcomer did not show that it is the same
// publisher (see Admit). The caller refuses the newcomer; the text of the
// wrapping error names the holder and belongs in logs, not in the answer to
// the client.
var ErrNameInUse = errors.New("stream is already being published")

// Publisher is one session that publishes a stream name, as the Registry
// knows it.
type Publisher struct {
	// Proto is "rtmp", "rtsp", ...
	Proto string
	// Remote is the publisher's address (host:port).
	Remote string
	// Key is the secret stream key the publisher presented, when
	// authentication is on; empty otherwise. A newcomer with the same key
	// may replace the session at once. The Registry keeps only its SHA-256
	// and never logs it.
	Key string
	// LastActive returns when the session last received anything from its
	// publisher. A session silent for TakeoverSilence may be replaced by any
	// publisher of the name. Nil means never silent.
	LastActive func() time.Time
	// Kick ends the session. The Registry calls it when another publisher
	// takes the name; it may block until the session has ended.
	Kick func()
}

// Registry tracks which session publishes each public stream name.
//
// Its rule, for a publisher that arrives while another session holds the
// name: the newcomer replaces that session only when it shows it is the same
// publisher, because with authentication off the stream key is the public
// name, and anyone who can watch could otherwise cut a live sale by
// publishing to it. The newcomer is the same publisher when
//   - it presented the same stream key (authentication on), or
//   - it comes from the same IP address (OBS restarting the stream), or
//   - the old session is dead: its connection ended (it releases the name),
//     or it has received nothing for TakeoverSilence. OBS reconnects about
//     2s after a network drop, often before the server noticed the old
//     connection died; a live encoder sends media many times a second, so a
//     silent session is a dead one.
//
// A newcomer that shows none of these waits up to TakeoverSilence for the
// old session to end or fall silent, then is refused with ErrNameInUse.
//
// The zero value is ready to use; it logs to slog.Default().
type Registry struct {
	// Logger receives "publisher replaced" lines. It defaults to
	// slog.Default().
	Logger *slog.Logger
	// TakeoverSilence is how long a session must have received nothing
	// before a publisher from another address, without the same key, may
	// replace it; it is also how long such a newcomer waits for that before
	// it is refused. Keep it under the ingest ReadTimeout (10s), which ends
	// silent sessions anyway. It defaults to 3s.
	TakeoverSilence time.Duration
	// Leases, when set, is the cluster's say in who publishes a name
	// (package cluster implements it): a publisher that Admit's own rules
	// admit must also win the name's lease. It defaults to nil: a single
	// node.
	Leases Leases

	mu      sync.Mutex
	holders map[string]*registryEntry
}

// Leases claims stream names in a cluster of servers.
type Leases interface {
	// Acquire claims name for this server on behalf of p, applying to a
	// publisher on another server the rules Registry applies to one here;
	// it waits for the holder as Admit does and returns an error wrapping
	// ErrNameInUse when the holder keeps the name (other errors: the
	// cluster cannot say). Once acquired the claim is kept until release;
	// if the cluster takes it away, it calls p.Kick.
	Acquire(ctx context.Context, name string, p Publisher) (release func(), err error)
}

type registryEntry struct {
	pub    Publisher
	keySum [sha256.Size]byte
	hasKey bool
	// yields is set for a session taken with Claim (an RTSP pull the
	// operator configured): any publisher takes the name from it.
	yields bool
	// gone is closed when the entry stops holding the name (released or
	// replaced), under Registry.mu.
	gone     chan struct{}
	goneDone bool
}

func (e *registryEntry) leave() {
	if !e.goneDone {
		e.goneDone = true
		close(e.gone)
	}
}

// NewRegistry returns an empty Registry that logs to log (slog.Default() when
// nil).
func NewRegistry(log *slog.Logger) *Registry {
	return &Registry{Logger: log}
}

// DefaultTakeoverSilence is the default of Registry.TakeoverSilence.
const DefaultTakeoverSilence = 3 * time.Second

func (r *Registry) silence() time.Duration {
	if r.TakeoverSilence > 0 {
		return r.TakeoverSilence
	}
	return DefaultTakeoverSilence
}

func newEntry(p Publisher) *registryEntry {
	e := &registryEntry{pub: p, gone: make(chan struct{})}
	if p.Key != "" {
		e.keySum, e.hasKey = sha256.Sum256([]byte(p.Key)), true
		e.pub.Key = ""
	}
	return e
}

// Admit makes p the publisher of name if the name is free, held by a session
// taken with Claim, or held by a session that p replaces by the rules of
// Registry; the replaced session is kicked (outside the Registry's lock,
// before Admit returns) and a "publisher replaced" line is logged. Otherwise
// it waits, at most TakeoverSilence, for the holder to end or fall silent,
// and then returns an error wrapping ErrNameInUse. ctx ends the wait early
// (its error is returned).
//
// release gives the name up; it does nothing if another session has taken
// the name since, so a kicked session's cleanup cannot remove its successor.
func (r *Registry) Admit(ctx context.Context, name string, p Publisher) (release func(), err error) {
	e := newEntry(p)
	silence := r.silence()
	deadline := time.Now().Add(silence)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()

	for {
		now := time.Now()
		r.mu.Lock()
		old := r.holders[name]
		reason := ""
		if old != nil {
			reason = r.replaces(old, e, now, silence)
		}
		if old == nil || reason != "" {
			r.take(name, e, old)
			r.mu.Unlock()
			r.replaced(name, p, old, reason)
			return r.acquire(ctx, name, p, r.releaser(name, e))
		}
		gone := old.gone
		holder := old.pub
		r.mu.Unlock()

		if !now.Before(deadline) {
			return nil, fmt.Errorf("%w: the %s session from %s is still sending", ErrNameInUse, holder.Proto, holder.Remote)
		}
		// Wake when the holder would have been silent long enough, if it
		// stays silent, or at the deadline.
		wake := deadline
		if holder.LastActive != nil {
			if t := holder.LastActive().Add(silence); t.Before(wake) {
				wake = t
			}
		}
		d := max(wake.Sub(now), time.Millisecond)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-gone:
		case <-timer.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// acquire wins the name's lease in the cluster, if there is one, for a
// publisher admitted here; when it cannot, the name is given up again.
func (r *Registry) acquire(ctx context.Context, name string, p Publisher, release func()) (func(), error) {
	if r.Leases == nil {
		return release, nil
	}
	leaseRelease, err := r.Leases.Acquire(ctx, name, p)
	if err != nil {
		release()
		return nil, err
	}
	return func() { release(); leaseRelease() }, nil
}

// replaces says why newcomer e may replace old, or "" when it may not.
func (r *Registry) replaces(old, e *registryEntry, now time.Time, silence time.Duration) string {
	switch {
	case old.yields:
		return "the holder yields to publishers"
	case old.hasKey && e.hasKey && subtle.ConstantTimeCompare(old.keySum[:], e.keySum[:]) == 1:
		return "same stream key"
	case sameHost(old.pub.Remote, e.pub.Remote):
		return "same address"
	case old.pub.LastActive != nil && now.Sub(old.pub.LastActive()) >= silence:
		return "old session silent"
	}
	return ""
}

func sameHost(a, b string) bool {
	ha, _, errA := net.SplitHostPort(a)
	hb, _, errB := net.SplitHostPort(b)
	return errA == nil && errB == nil && ha != "" && ha == hb
}

// take makes e the holder of name, under r.mu.
func (r *Registry) take(name string, e, old *registryEntry) {
	if r.holders == nil {
		r.holders = make(map[string]*registryEntry)
	}
	r.holders[name] = e
	if old != nil {
		old.leave()
	}
}

// replaced logs and kicks the replaced session, outside r.mu.
func (r *Registry) replaced(name string, p Publisher, old *registryEntry, reason string) {
	if old == nil {
		return
	}
	r.logger().Info("publisher replaced",
		"stream", name,
		"proto", p.Proto,
		"remote", p.Remote,
		"old_proto", old.pub.Proto,
		"old_remote", old.pub.Remote,
		"reason", reason)
	if old.pub.Kick != nil {
		old.pub.Kick()
	}
}

func (r *Registry) releaser(name string, e *registryEntry) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.holders[name] == e {
				delete(r.holders, name)
			}
			e.leave()
		})
	}
}

// Claim makes p the publisher of name whoever holds it, kicking the holder
// as Admit does. It is for sessions the operator configured (an RTSP pull),
// not for publishers that connect: such a session yields the name to any
// publisher that Admit is asked about.
func (r *Registry) Claim(name string, p Publisher) (release func()) {
	e := newEntry(p)
	e.yields = true
	r.mu.Lock()
	old := r.holders[name]
	r.take(name, e, old)
	r.mu.Unlock()
	r.replaced(name, p, old, "claimed")
	return r.releaser(name, e)
}

// Lookup returns the current publisher of name.
func (r *Registry) Lookup(name string) (Publisher, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.holders[name]
	if !ok {
		return Publisher{}, false
	}
	return e.pub, true
}

func (r *Registry) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

package ingest

import (
	"log/slog"
	"sync"
)

// Publisher is one session that publishes a stream name, as the Registry
// knows it.
type Publisher struct {
	// Proto is "rtmp", "rtsp", ...
	Proto string
	// Remote is the publisher's address.
	Remote string
	// Kick ends the session. The Registry calls it when another publisher
	// claims the same name; it may block until the session has ended.
	Kick func()
}

// Registry tracks which session publishes each public stream name, so that a
// publisher that comes back (OBS reconnects about 2s after a network drop,
// often before the server noticed the old connection died) replaces its old
// session instead of being refused as "already publishing".
//
// The zero value is ready to use; it logs to slog.Default().
type Registry struct {
	// Logger receives "publisher replaced" lines. It defaults to
	// slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	holders map[string]*registryEntry
}

type registryEntry struct {
	pub Publisher
}

// NewRegistry returns an empty Registry that logs to log (slog.Default() when
// nil).
func NewRegistry(log *slog.Logger) *Registry {
	return &Registry{Logger: log}
}

// Claim makes p the publisher of name. If another session held the name, it
// is kicked (its Kick is called, outside the Registry's lock, before Claim
// returns) and a "publisher replaced" line is logged.
//
// release gives the name up; it does nothing if another session has claimed
// the name since, so a kicked session's cleanup cannot remove its successor.
func (r *Registry) Claim(name string, p Publisher) (release func()) {
	e := &registryEntry{pub: p}

	r.mu.Lock()
	if r.holders == nil {
		r.holders = make(map[string]*registryEntry)
	}
	old := r.holders[name]
	r.holders[name] = e
	r.mu.Unlock()

	if old != nil {
		r.logger().Info("publisher replaced",
			"stream", name,
			"proto", p.Proto,
			"remote", p.Remote,
			"old_proto", old.pub.Proto,
			"old_remote", old.pub.Remote)
		if old.pub.Kick != nil {
			old.pub.Kick()
		}
	}

	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.holders[name] == e {
				delete(r.holders, name)
			}
		})
	}
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

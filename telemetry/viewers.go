package telemetry

import (
	"hash/maphash"
	"sync"
	"time"
)

// viewerSet counts active viewers: the distinct sessions (stream, client IP
// and User-Agent, hashed) that loaded a playlist within a window. It holds
// at most max sessions; a new session beyond that is dropped, and counted as
// dropped, until old ones expire.
type viewerSet struct {
	window time.Duration
	max    int
	seed   maphash.Seed

	mu        sync.Mutex
	seen      map[uint64]viewer
	dropped   uint64
	lastPrune time.Time
}

type viewer struct {
	stream string
	last   time.Time
}

func newViewerSet(window time.Duration, max int) *viewerSet {
	return &viewerSet{window: window, max: max, seed: maphash.MakeSeed(), seen: map[uint64]viewer{}}
}

// key hashes a session. Collisions of 64-bit hashes are negligible at the
// sizes the set holds.
func (v *viewerSet) key(stream, ip, userAgent string) uint64 {
	var h maphash.Hash
	h.SetSeed(v.seed)
	_, _ = h.WriteString(stream)
	_ = h.WriteByte(0)
	_, _ = h.WriteString(ip)
	_ = h.WriteByte(0)
	_, _ = h.WriteString(userAgent)
	return h.Sum64()
}

// see records that a session loaded a playlist of stream at now.
func (v *viewerSet) see(stream, ip, userAgent string, now time.Time) {
	k := v.key(stream, ip, userAgent)
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.seen[k]; ok {
		s.last = now
		v.seen[k] = s
		return
	}
	// When full, expired sessions are pruned at most once a second: a flood
	// of new sessions cannot make every request scan the set.
	if len(v.seen) >= v.max && now.Sub(v.lastPrune) >= time.Second {
		v.pruneLocked(now)
	}
	if len(v.seen) >= v.max {
		v.dropped++
		return
	}
	v.seen[k] = viewer{stream: stream, last: now}
}

func (v *viewerSet) pruneLocked(now time.Time) {
	v.lastPrune = now
	for k, s := range v.seen {
		if now.Sub(s.last) > v.window {
			delete(v.seen, k)
		}
	}
}

// count prunes expired sessions and returns the active ones by stream, and
// how many sessions were dropped since the start.
func (v *viewerSet) count(now time.Time) (byStream map[string]int, dropped uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pruneLocked(now)
	byStream = map[string]int{}
	for _, s := range v.seen {
		byStream[s.stream]++
	}
	return byStream, v.dropped
}

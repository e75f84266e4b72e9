package audience

import (
	"math"
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens a second, holding at most burst.
// It is a pair of numbers rather than an x/time/rate.Limiter (a mutex and
// six fields) because one is kept per viewer, under its stream's lock.
type bucket struct {
	tokens float64
	last   int64 // Unix ns of the last refill
}

// take takes n tokens at now; when there are not enough it takes none and
// returns how long until there would be.
func (b *bucket) take(n, rate, burst float64, now int64) (bool, time.Duration) {
	if el := now - b.last; el > 0 {
		b.tokens = math.Min(burst, b.tokens+float64(el)/1e9*rate)
		b.last = now
	}
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	return false, time.Duration((n - b.tokens) / rate * float64(time.Second))
}

// full reports whether the bucket has refilled by now: forgetting it then
// changes nothing, as a new bucket starts full.
func (b *bucket) full(rate, burst float64, now int64) bool {
	return b.tokens+float64(now-b.last)/1e9*rate >= burst
}

// addrLimiter is one bucket per client address, at most max of them. When
// the map is full the buckets that have refilled are dropped, at most once
// a second (a full map of busy clients would otherwise make every new
// client pay a sweep); until then new clients are refused.
type addrLimiter struct {
	rate, burst float64
	max         int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep int64
}

func newAddrLimiter(rate, burst float64, maxAddrs int) *addrLimiter {
	return &addrLimiter{rate: rate, burst: burst, max: maxAddrs, buckets: map[string]*bucket{}}
}

// allow takes one token of addr's bucket. full is true when addr is new and
// no bucket could be made for it.
func (l *addrLimiter) allow(addr string, now int64) (ok bool, wait time.Duration, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweepLocked(now)
			if len(l.buckets) >= l.max {
				return false, time.Second, true
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[addr] = b
	}
	ok, wait = b.take(1, l.rate, l.burst, now)
	return ok, wait, false
}

func (l *addrLimiter) sweepLocked(now int64) {
	if now-l.lastSweep < int64(time.Second) {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.full(l.rate, l.burst, now) {
			delete(l.buckets, k)
		}
	}
}

func (l *addrLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

package cues

import (
	"math"
	"sync"
	"time"
)

// limiter is one token bucket per stream: rate tokens a second, holding at
// most burst. A mutex around a small map; buckets of streams that went
// quiet are dropped when the map grows past maxIdle.
type limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxIdle = 1024

func newLimiter(rate float64, burst float64) *limiter {
	return &limiter{rate: rate, burst: max(burst, 1), buckets: map[string]*bucket{}}
}

// allow takes a token from stream's bucket. When there is none it returns
// false and how long until there is one.
func (l *limiter) allow(stream string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[stream]
	if b == nil {
		if len(l.buckets) >= maxIdle {
			l.dropFull(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[stream] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// dropFull forgets buckets that have refilled: a new bucket starts full, so
// nothing changes for their streams.
func (l *limiter) dropFull(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

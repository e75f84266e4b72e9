package origin

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// headerCache holds the header values of stream-file responses, so that
// each response's header map shares one []string per value instead of
// allocating one per header per response: with a thousand viewers the
// origin answers thousands of requests for each part, and net/http's own
// per-request allocations already set how often the collector runs.
// net/http copies a handler's header map but never writes into a value
// slice, and each slice has len == cap, so an append elsewhere copies it.
// The zero value is ready to use.
type headerCache struct {
	mu     sync.Mutex
	values map[string][]string // content types, CORS origin, constants
	ages   map[int64][]string  // Cache-Control by max-age
	// lastMod is the Last-Modified of the newest second asked for: the
	// viewers of one part all ask for the same.
	lastMod atomic.Pointer[lastModified]
}

type lastModified struct {
	unix  int64
	value []string
}

// maxCachedValues bounds values and ages; a value past it is allocated
// per response. The values come from configuration, constants and the
// packager's few content types and target durations.
const maxCachedValues = 64

// value returns a shared one-element slice holding v.
func (c *headerCache) value(v string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.values[v]; ok {
		return s
	}
	s := []string{v}
	if len(c.values) < maxCachedValues {
		if c.values == nil {
			c.values = map[string][]string{}
		}
		c.values[v] = s
	}
	return s
}

// maxAge returns the shared "public, max-age=seconds" value.
func (c *headerCache) maxAge(seconds int64) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.ages[seconds]; ok {
		return s
	}
	s := []string{"public, max-age=" + strconv.FormatInt(seconds, 10)}
	if len(c.ages) < maxCachedValues {
		if c.ages == nil {
			c.ages = map[int64][]string{}
		}
		c.ages[seconds] = s
	}
	return s
}

// lastModified returns t as an HTTP date.
func (c *headerCache) lastModified(t time.Time) []string {
	unix := t.Unix()
	if lm := c.lastMod.Load(); lm != nil && lm.unix == unix {
		return lm.value
	}
	lm := &lastModified{unix: unix, value: []string{t.UTC().Format(http.TimeFormat)}}
	c.lastMod.Store(lm)
	return lm.value
}

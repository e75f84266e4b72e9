package ingest

import "time"

// wallWindow is how long an early arrival keeps a track's wall clock back.
// The clock follows the earliest arrivals of the last one to two windows,
// so a publisher's clock that runs slower than the wall clock is followed
// within a window, and network jitter within a window does not move it.
const wallWindow = 10 * time.Second

// wallClock dates one track's units by the wall-clock time at which they
// arrived, on the publisher's timeline: a unit's wall time is the anchor
// plus its PTS, and the anchor is the least (arrival - PTS - duration) of
// the recent units. So a unit is dated no later than the moment it had
// wholly arrived, and the dating follows the media clock between arrivals
// instead of the jitter of each packet.
//
// The publisher's own idea of the time (RTCP sender reports) is not used:
// GStreamer's was seen 0.02 to 2.8 s ahead of the wall clock, differing from
// run to run.
type wallClock struct {
	anchor time.Time // wall-clock time of PTS zero
	prev   time.Time // least (arrival - end) of the previous window
	cur    time.Time // least (arrival - end) of the current window
	since  time.Time // start of the current window
	set    bool

	lastDTS time.Duration // the previous unit's, for date
	hasLast bool
}

// date records a unit at pts and dts that arrived at arrived and returns
// its wall time. The publisher (RTMP) gives no durations: the unit is taken
// to last as long as the decode-time distance from the previous one.
func (c *wallClock) date(pts, dts time.Duration, arrived time.Time) time.Time {
	var d time.Duration
	if c.hasLast && dts > c.lastDTS {
		d = min(dts-c.lastDTS, time.Second)
	}
	c.lastDTS, c.hasLast = dts, true
	c.observe(pts+d, arrived)
	return c.at(pts)
}

// observe records a unit that ends at end on the publisher's timeline (PTS
// plus duration) and arrived at arrived. It returns how far the anchor moved
// back: a unit that arrived earlier, relative to its time, than any recent
// one.
func (c *wallClock) observe(end time.Duration, arrived time.Time) (back time.Duration) {
	a := arrived.Add(-end)
	if !c.set {
		c.anchor, c.prev, c.cur, c.since, c.set = a, a, a, arrived, true
		return 0
	}
	if arrived.Sub(c.since) >= wallWindow {
		c.prev, c.cur, c.since = c.cur, a, arrived
	} else if a.Before(c.cur) {
		c.cur = a
	}
	old := c.anchor
	c.anchor = c.prev
	if c.cur.Before(c.anchor) {
		c.anchor = c.cur
	}
	if c.anchor.Before(old) {
		return old.Sub(c.anchor)
	}
	return 0
}

// at returns the wall-clock time of pts.
func (c *wallClock) at(pts time.Duration) time.Time { return c.anchor.Add(pts) }

package bench

import (
	"time"
)

// addViewers starts c.N viewers of c.Base over c.Ramp (load process).
func (l *load) addViewers(c loadCmd) error {
	onPart := func(n int64, _ []byte, size int64, at time.Time) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.measuring {
			return
		}
		p := l.parts[n]
		if p == nil {
			if at.Before(l.from) {
				return
			}
			p = &partTimes{first: at, last: at}
			l.parts[n] = p
		}
		p.first = minTime(p.first, at)
		p.last = maxTime(p.last, at)
		p.count++
		l.partSize[n] = size
	}
	step := c.Ramp / time.Duration(max(c.N, 1))
	for range c.N {
		f, err := newViewerFetcher(l.httpClient(), c.Base)
		if err != nil {
			return err
		}
		v := &viewer{c: f, base: c.Base}
		l.mu.Lock()
		l.viewers = append(l.viewers, v)
		l.mu.Unlock()
		l.wg.Go(func() { v.run(l.ctx, onPart) })
		if !sleep(l.ctx, step) {
			return l.ctx.Err()
		}
	}
	return nil
}

// measure records the parts the viewers get for c.Window (load process),
// then waits a second more for the late viewers of the window's last parts.
func (l *load) measure(c loadCmd, r *loadReply) error {
	l.mu.Lock()
	n := len(l.viewers)
	errs0 := 0
	for _, v := range l.viewers {
		errs0 += v.errors
	}
	l.parts, l.partSize = map[int64]*partTimes{}, map[int64]int64{}
	l.measuring, l.from = true, time.Now()
	l.mu.Unlock()
	cpu0, t0 := cpuTime(), time.Now()
	sleep(l.ctx, c.Window)
	l.mu.Lock()
	// Parts first seen after the window are not counted; those seen in it
	// still collect their late viewers during the tail.
	end := time.Now()
	l.mu.Unlock()
	sleep(l.ctx, time.Second)
	r.Cores = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()

	l.mu.Lock()
	defer l.mu.Unlock()
	l.measuring = false
	var spread []time.Duration
	for part, p := range l.parts {
		if p.first.After(end) {
			continue
		}
		r.Parts += int64(p.count)
		r.Bytes += int64(p.count) * l.partSize[part]
		if p.count < n {
			r.Incomplete++
			continue
		}
		spread = append(spread, p.last.Sub(p.first))
	}
	r.Spread = dist(spread)
	// Viewer counters are read without their goroutines' synchronisation:
	// a figure for a report, not a value anything depends on.
	for _, v := range l.viewers {
		r.Errors += v.errors
		if r.FirstErr == "" && v.firstErr != nil {
			r.FirstErr = v.firstErr.Error()
		}
	}
	r.Errors -= errs0
	return nil
}

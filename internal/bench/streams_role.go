package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// latencyStream is one publisher of the streams benchmark and its viewer
// (load process).
type latencyStream struct {
	name string
	log  sendLog

	mu        sync.Mutex
	measuring bool
	lat       []time.Duration
	hinted    []time.Duration // of the hinted viewer, if any
	unmatched int
	errors    int
}

// addStreams starts c.N publishers of c.FLV, each after a random delay
// under 2 s, each followed by a viewer (load process).
func (l *load) addStreams(c loadCmd) error {
	src, err := loadSource(c.FLV)
	if err != nil {
		return err
	}
	for range c.N {
		s := &latencyStream{name: fmt.Sprintf("s%d", len(l.streams))}
		l.streams = append(l.streams, s)
		delay := rand.N(2 * time.Second)
		l.wg.Go(func() {
			if !sleep(l.ctx, delay) {
				return
			}
			l.wg.Go(func() {
				if err := publish(l.ctx, c.RTMP+s.name, src, &s.log); err != nil {
					fmt.Fprintln(os.Stderr, "load publisher", s.name+":", err)
				}
			})
			if err := s.follow(l, c.Base+s.name+"/", c.Hinted); err != nil && l.ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "load viewer", s.name+":", err)
			}
		})
	}
	return nil
}

// follow reads the stream part by part at the live edge, and while
// measuring records each part's publish-to-deliverable time, as
// PublishToDeliverable does: with hinted, for a second viewer as well, the
// one whose part requests wait on the preload hint.
func (s *latencyStream) follow(l *load, base string, hinted bool) error {
	c := l.httpClient()
	if err := waitReady(l.ctx, c, base); err != nil {
		return err
	}
	vt, err := fetchVideoTrack(l.ctx, c, base)
	if err != nil {
		return err
	}
	v := &viewer{c: stdFetcher{c}, base: base, keep: true}
	if hinted {
		hv := &viewer{c: stdFetcher{c}, base: base, keep: true}
		l.wg.Go(func() {
			hv.runHinted(l.ctx, func(_ int64, body []byte, _ int64, at time.Time) {
				s.record(vt, body, at, &s.hinted)
			})
		})
	}
	v.run(l.ctx, func(_ int64, body []byte, _ int64, at time.Time) {
		s.mu.Lock()
		s.errors = v.errors
		s.mu.Unlock()
		s.record(vt, body, at, &s.lat)
	})
	return nil
}

// record adds the publish-to-deliverable time of a part received at at to
// *into, while measuring.
func (s *latencyStream) record(vt *videoTrack, body []byte, at time.Time, into *[]time.Duration) {
	s.mu.Lock()
	measuring := s.measuring
	s.mu.Unlock()
	if !measuring {
		return
	}
	firstDTS, ok := s.log.first()
	var d time.Duration
	var err error
	if ok {
		d, ok, err = deliverable(vt, &s.log, firstDTS, body, at)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || !ok {
		s.unmatched++
		return
	}
	*into = append(*into, d)
}

// latency measures every stream's publish-to-deliverable for c.Window
// (load process).
func (l *load) latency(c loadCmd, r *loadReply) error {
	errs0 := make([]int, len(l.streams))
	for i, s := range l.streams {
		s.mu.Lock()
		s.measuring, s.lat, s.hinted, s.unmatched = true, nil, nil, 0
		errs0[i] = s.errors
		s.mu.Unlock()
	}
	if l.cues != nil {
		l.cues.take() // count the window's POSTs only
	}
	cpu0, t0 := cpuTime(), time.Now()
	sleep(l.ctx, c.Window)
	r.Cores = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	var all, hinted []time.Duration
	for i, s := range l.streams {
		s.mu.Lock()
		s.measuring = false
		all = append(all, s.lat...)
		hinted = append(hinted, s.hinted...)
		r.Unmatched += s.unmatched
		r.Errors += s.errors - errs0[i]
		if len(s.lat) > 0 {
			r.Live++
		}
		s.mu.Unlock()
	}
	r.Latency, r.Hinted = dist(all), dist(hinted)
	if l.cues != nil {
		r.Posted, r.Refused, r.PostTime = l.cues.take()
	}
	return nil
}

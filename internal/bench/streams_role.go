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
			if err := s.follow(l, c.Base+s.name+"/"); err != nil && l.ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "load viewer", s.name+":", err)
			}
		})
	}
	return nil
}

// follow reads the stream part by part at the live edge, and while
// measuring records each part's publish-to-deliverable time, as
// PublishToDeliverable does.
func (s *latencyStream) follow(l *load, base string) error {
	c := l.httpClient()
	if err := waitReady(l.ctx, c, base); err != nil {
		return err
	}
	var b []byte
	if err := get(l.ctx, c, base+"stream.m3u8", &b); err != nil {
		return err
	}
	pl, err := parsePlaylist(b)
	if err != nil {
		return err
	}
	if err := get(l.ctx, c, base+pl.initURI, &b); err != nil {
		return err
	}
	vt, err := parseInit(b)
	if err != nil {
		return err
	}
	v := &viewer{c: stdFetcher{c}, base: base, keep: true}
	v.run(l.ctx, func(_ int64, body []byte, _ int64, at time.Time) {
		s.mu.Lock()
		measuring := s.measuring
		s.errors = v.errors
		s.mu.Unlock()
		if !measuring {
			return
		}
		last, err := vt.lastDTS(body)
		firstDTS, ok := s.log.first()
		var sent time.Time
		var off time.Duration
		if err == nil && ok {
			sent, off, ok = s.log.lookup(firstDTS + last)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil || !ok || absDur(off) > 2*time.Millisecond {
			s.unmatched++
			return
		}
		s.lat = append(s.lat, at.Sub(sent))
	})
	return nil
}

// latency measures every stream's publish-to-deliverable for c.Window
// (load process).
func (l *load) latency(c loadCmd, r *loadReply) error {
	errs0 := make([]int, len(l.streams))
	for i, s := range l.streams {
		s.mu.Lock()
		s.measuring, s.lat, s.unmatched = true, nil, 0
		errs0[i] = s.errors
		s.mu.Unlock()
	}
	cpu0, t0 := cpuTime(), time.Now()
	sleep(l.ctx, c.Window)
	r.Cores = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	var all []time.Duration
	for i, s := range l.streams {
		s.mu.Lock()
		s.measuring = false
		all = append(all, s.lat...)
		r.Unmatched += s.unmatched
		r.Errors += s.errors - errs0[i]
		if len(s.lat) > 0 {
			r.Live++
		}
		s.mu.Unlock()
	}
	r.Latency = dist(all)
	return nil
}

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// signalAddrs is how many client addresses the simulated viewers are
// spread over (127.1.0.1 and up: Linux routes all of 127.0.0.0/8 to
// loopback), so that the per-address limit sees viewers as from homes and
// offices, about twenty behind each address, not all behind one.
const signalAddrs = 250

// signalLoad is the load process's simulated watch pages: heartbeats of N
// viewers and bursts of reactions, posted to one stream's signals API.
type signalLoad struct {
	url     string
	viewers int
	clients []*http.Client // one per source address
	jobs    chan signalJob

	mu       sync.Mutex
	accepted int // 202
	refused  int // any other answer
	dropped  int // not sent: the senders were behind
	rtt      []time.Duration
}

type signalJob struct {
	viewer int
	kind   string
}

// startSignals starts the senders of c.Base (the signals URL) for c.N
// viewers (load process).
func (l *load) startSignals(c loadCmd) error {
	if l.signals != nil {
		return errors.New("signal load already running")
	}
	if c.N <= 0 {
		return fmt.Errorf("signal viewers %d", c.N)
	}
	s := &signalLoad{url: c.Base, viewers: c.N, jobs: make(chan signalJob, 4096)}
	for i := range signalAddrs {
		ip := net.IPv4(127, 1, byte(i/250), byte(i%250+1))
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
		s.clients = append(s.clients, &http.Client{Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}})
	}
	l.signals = s
	for range 256 {
		l.wg.Go(func() {
			var b bytes.Buffer
			for {
				select {
				case <-l.ctx.Done():
					return
				case j := <-s.jobs:
					s.send(l.ctx, j, &b)
				}
			}
		})
	}
	return nil
}

func (s *signalLoad) send(ctx context.Context, j signalJob, b *bytes.Buffer) {
	b.Reset()
	fmt.Fprintf(b, `{"viewer":"bench-viewer-%08d","kind":%q}`, j.viewer, j.kind)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(b.Bytes()))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := s.clients[j.viewer%len(s.clients)].Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.count(false, 0)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	s.count(resp.StatusCode == http.StatusAccepted, time.Since(t0))
}

func (s *signalLoad) count(ok bool, rtt time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.accepted++
		s.rtt = append(s.rtt, rtt)
	} else {
		s.refused++
	}
}

// emit queues rate signals a second from job until d has passed (0:
// until the load process ends), in 10 ms ticks.
func (l *load) emit(rate int, d time.Duration, job func() signalJob) {
	s := l.signals
	l.wg.Go(func() {
		const tick = 10 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		start := time.Now()
		sent := 0
		for {
			select {
			case <-l.ctx.Done():
				return
			case now := <-t.C:
				if d > 0 && now.Sub(start) >= d {
					return
				}
				due := int(float64(rate) * now.Sub(start).Seconds())
				for ; sent < due; sent++ {
					select {
					case s.jobs <- job():
					default:
						s.mu.Lock()
						s.dropped++
						s.mu.Unlock()
					}
				}
			}
		}
	})
}

// addHeartbeats has every viewer beat once per c.Window, spread evenly
// (load process).
func (l *load) addHeartbeats(c loadCmd) error {
	if l.signals == nil {
		return errors.New("no signal load")
	}
	n := l.signals.viewers
	next := 0
	l.emit(int(float64(n)/c.Window.Seconds()), 0, func() signalJob {
		j := signalJob{viewer: next, kind: "heartbeat"}
		next = (next + 1) % n
		return j
	})
	return nil
}

// addReactions sends c.Rate hearts a second for c.Window, each from a
// random viewer (load process).
func (l *load) addReactions(c loadCmd) error {
	if l.signals == nil {
		return errors.New("no signal load")
	}
	n := l.signals.viewers
	l.emit(c.Rate, c.Window, func() signalJob { return signalJob{viewer: rand.IntN(n), kind: "reaction"} })
	return nil
}

// takeSignals returns and resets the counts (load process).
func (l *load) takeSignals(r *loadReply) error {
	s := l.signals
	if s == nil {
		return errors.New("no signal load")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Posted, r.Refused, r.PostTime, r.Errors = s.accepted, s.refused, dist(s.rtt), s.dropped
	s.accepted, s.refused, s.dropped, s.rtt = 0, 0, 0, nil
	return nil
}

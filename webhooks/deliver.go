package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// maxResponseBytes is how much of a receiver's answer is read (and
// discarded) so that the connection can be reused.
const maxResponseBytes = 64 << 10

// work is an endpoint's worker: it sends the endpoint's deliveries one at
// a time, each stream's in order; a stream whose head waits for a retry
// does not hold the others up.
func (s *Service) work(ep *endpoint) {
	for {
		d, wait := s.next(ep)
		if d == nil {
			t := time.NewTimer(wait)
			select {
			case <-ep.wake:
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			t.Stop()
			continue
		}
		err := s.send(s.ctx, ep, d)
		if s.ctx.Err() != nil {
			// Cut short by Close: the delivery stays in the outbox.
			s.mu.Lock()
			d.inflight = false
			s.mu.Unlock()
			return
		}
		s.done1(d, err)
	}
}

// next picks the delivery to send now: the earliest due head of a stream
// whose time has come. Otherwise it returns how long to wait.
func (s *Service) next(ep *endpoint) (*delivery, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var pick *delivery
	wait := time.Hour
	for _, q := range ep.streams {
		h := q[0]
		if h.inflight {
			continue
		}
		at := later(h.Due, h.next)
		if at.After(now) {
			wait = min(wait, at.Sub(now))
			continue
		}
		if pick == nil || deliveryOrder(h, pick) < 0 {
			pick = h
		}
	}
	if pick != nil {
		pick.inflight = true
	}
	return pick, wait
}

// done1 records the outcome of an attempt.
func (s *Service) done1(d *delivery, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.inflight = false
	if d.gone {
		if err == nil {
			s.delivered.Add(1)
		}
		return // dropped from the outbox meanwhile
	}
	w := &write{}
	var count *atomic.Int64
	switch {
	case err == nil:
		count = &s.delivered
		s.remove(d, w)
	default:
		d.Attempts++
		log := s.log.With("url", ep(d), "id", d.ID, "type", d.Msg.Type, "stream", d.Msg.Data.Stream,
			"attempt", d.Attempts, "of", s.cfg.Attempts, "err", err)
		if d.Attempts >= s.cfg.Attempts {
			count = &s.failed
			log.Warn("webhook given up after its last attempt")
			s.remove(d, w)
			break
		}
		count = &s.retried
		wait := s.backoff(d.Attempts)
		d.next = s.now().Add(wait)
		log.Info("webhook attempt failed; retrying", "retry_in", wait)
		w.upsert(d) // the attempts count survives a restart
	}
	if err := s.box.write(w.putList(), w.del); err != nil {
		s.log.Error("webhook outbox write failed", "err", err)
	}
	// The depth first, so that a reader who sees the count sees the
	// outbox without the delivery.
	s.depth.Store(int64(len(s.all)))
	count.Add(1)
}

func ep(d *delivery) string { return d.ep.Redacted() }

// backoff is the wait after the n-th failed attempt: BackoffBase doubled
// n-1 times, at most BackoffMax.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.BackoffBase
	for i := 1; i < n && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.BackoffMax)
}

// errStatus is an answer outside 2xx.
var errStatus = errors.New("receiver answered")

// send makes one attempt: the body, signed for now.
func (s *Service) send(ctx context.Context, ep *endpoint, d *delivery) error {
	body, err := json.Marshal(&d.Msg)
	if err != nil {
		return err
	}
	ts := s.now().Unix()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("request not built") // the URL was checked at New
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shopcast-webhooks")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(ep.key, d.ID, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which may carry credentials.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	return nil
}

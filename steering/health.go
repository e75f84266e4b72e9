package steering

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Run probes the pathways every TTL/2 until ctx ends. One failed probe (an error, a timeout, a status
// other than 200) marks a pathway unhealthy, so that it drops to the end
// of PATHWAY-PRIORITY at most TTL/2 plus ProbeTimeout after it died: a
// player reading the manifest every TTL then leaves it within about one
// and a half TTL of the death in the worst case, one TTL on average.
func (s *Steering) Run(ctx context.Context) {
	// The first probe waits one interval: at start this server's own
	// listener may not be bound yet, and every pathway counts as healthy
	// until a probe says otherwise.
	t := time.NewTicker(s.cfg.TTL / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.probeAll(ctx)
	}
}

// probeAll probes every probed pathway at once, so that one slow pathway
// does not delay the verdict on the others.
func (s *Steering) probeAll(ctx context.Context) {
	var wg sync.WaitGroup
	// Pathways with a node are probed too: their probe stands in when the
	// cluster forgets the node.
	for _, p := range s.cfg.Pathways {
		wg.Go(func() {
			ok := s.probe(ctx, p)
			if ctx.Err() != nil {
				return // shutting down: not the pathway's fault
			}
			s.setProbed(p.ID, ok)
		})
	}
	wg.Wait()
}

// probe asks a pathway's /healthz.
func (s *Steering) probe(ctx context.Context, p Pathway) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.URL, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *Steering) setProbed(id string, ok bool) {
	s.mu.Lock()
	was := s.probed[id]
	s.probed[id] = ok
	s.mu.Unlock()
	if was != ok {
		s.log.Info("steering pathway health changed", "pathway", id, "healthy", ok)
	}
}

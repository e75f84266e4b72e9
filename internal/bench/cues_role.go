package bench

import (
	"errors"
	"fmt"
	"time"
)

// addCueLoad starts posting c.Rate cues/s ("at":"now", lasting a second) to
// the cue API at c.Base until the load process ends (load process). A
// "now" POST waits for the next frame, up to a frame interval, so eight
// producers keep the rate.
func (l *load) addCueLoad(c loadCmd) error {
	if l.cues != nil {
		return errors.New("cue load already running")
	}
	if c.Rate <= 0 {
		return fmt.Errorf("cue rate %d", c.Rate)
	}
	l.cues = &cueLoad{}
	client := newHTTPClient(8)
	jobs := make(chan int)
	for range 8 {
		l.wg.Go(func() {
			for i := range jobs {
				t0 := time.Now()
				_, err := postCue(l.ctx, client, c.Base, fmt.Sprintf("l%d", i), 1000)
				l.cues.mu.Lock()
				switch {
				case err == nil:
					l.cues.posted++
					l.cues.rtt = append(l.cues.rtt, time.Since(t0))
				case l.ctx.Err() == nil:
					l.cues.refused++
				}
				l.cues.mu.Unlock()
			}
		})
	}
	l.wg.Go(func() {
		defer close(jobs)
		tick := time.NewTicker(time.Second / time.Duration(c.Rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case jobs <- i:
			case <-l.ctx.Done():
				return
			}
		}
	})
	return nil
}

// take returns and resets the counts.
func (cl *cueLoad) take() (posted, refused int, rtt Dist) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	posted, refused, rtt = cl.posted, cl.refused, dist(cl.rtt)
	cl.posted, cl.refused, cl.rtt = 0, 0, nil
	return posted, refused, rtt
}

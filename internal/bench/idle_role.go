package bench

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// idleLoad is the load process's set of idle requesters, which "release"
// stops.
type idleLoad struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the requesters, also counted in load.wg
}

// addIdle starts c.N requesters over c.Ramp, each holding one blocking
// playlist request for the segment after next (_HLS_msn two past the last
// complete segment, the most RFC 8216bis 6.2.5.2 lets a server wait for)
// and re-issuing it when it returns (load process).
func (l *load) addIdle(c loadCmd) error {
	if l.idle == nil || l.idle.ctx.Err() != nil {
		ctx, cancel := context.WithCancel(l.ctx)
		l.idle = &idleLoad{ctx: ctx, cancel: cancel}
	}
	ctx, il := l.idle.ctx, l.idle
	client := l.httpClient()
	step := c.Ramp / time.Duration(max(c.N, 1))
	for range c.N {
		il.wg.Add(1)
		l.wg.Go(func() {
			defer il.wg.Done()
			var b []byte
			url := c.Base + "stream.m3u8"
			for ctx.Err() == nil {
				if err := get(ctx, client, url, &b); err != nil {
					sleep(ctx, 100*time.Millisecond)
					url = c.Base + "stream.m3u8"
					continue
				}
				pl, err := parsePlaylist(b)
				if err != nil || pl.lastSeg < 0 {
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				url = c.Base + "stream.m3u8?_HLS_msn=" + strconv.FormatInt(pl.lastSeg+2, 10)
			}
		})
		if !sleep(ctx, step) {
			return ctx.Err()
		}
	}
	return nil
}

// releaseIdle stops the idle requesters: their requests are cancelled,
// which closes their connections, and the connections left idle between
// two requests are closed too (load process). It returns once every
// requester has returned.
func (l *load) releaseIdle() error {
	if l.idle == nil {
		return errors.New("no idle requests to release")
	}
	l.idle.cancel()
	l.idle.wg.Wait()
	l.httpClient().CloseIdleConnections()
	return nil
}

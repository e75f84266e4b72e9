package bench

import (
	"strconv"
	"time"
)

// addIdle starts c.N requesters over c.Ramp, each holding one blocking
// playlist request for the segment after next (_HLS_msn two past the last
// complete segment, the most RFC 8216bis 6.2.5.2 lets a server wait for)
// and re-issuing it when it returns (load process).
func (l *load) addIdle(c loadCmd) error {
	client := l.httpClient()
	step := c.Ramp / time.Duration(max(c.N, 1))
	for range c.N {
		l.wg.Go(func() {
			var b []byte
			url := c.Base + "stream.m3u8"
			for l.ctx.Err() == nil {
				if err := get(l.ctx, client, url, &b); err != nil {
					sleep(l.ctx, 100*time.Millisecond)
					url = c.Base + "stream.m3u8"
					continue
				}
				pl, err := parsePlaylist(b)
				if err != nil || pl.lastSeg < 0 {
					sleep(l.ctx, 100*time.Millisecond)
					continue
				}
				url = c.Base + "stream.m3u8?_HLS_msn=" + strconv.FormatInt(pl.lastSeg+2, 10)
			}
		})
		if !sleep(l.ctx, step) {
			return l.ctx.Err()
		}
	}
	return nil
}

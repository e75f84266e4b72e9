package bench

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// vodLoad is the load process's set of replay viewers ("vod"), all of one
// playlist URL.
type vodLoad struct {
	cancel context.CancelFunc
	client *http.Client
	wg     sync.WaitGroup // the viewers, also counted in load.wg
	// bytes and files count the bodies read (playlists, init sections and
	// segments) and the responses; errors the failed requests.
	bytes, files, errors atomic.Int64
	firstErr             atomic.Value // string
}

// addVOD stops the replay viewers running, if any, and starts c.N of the
// playlist c.Base, joining over c.Ramp (load process). Each reads the
// playlist, then its init section and every segment in order as fast as
// the server sends them, and starts again: as a player seeking through
// the whole replay would, with no pacing. Each viewer has its own
// keep-alive connection.
func (l *load) addVOD(c loadCmd) error {
	l.stopVOD()
	if c.N <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(l.ctx)
	client := newHTTPClient(c.N)
	v := &vodLoad{cancel: cancel, client: client}
	l.vod = v
	dir := c.Base[:strings.LastIndexByte(c.Base, '/')+1]
	step := c.Ramp / time.Duration(c.N)
	for range c.N {
		v.wg.Add(1)
		l.wg.Go(func() {
			defer v.wg.Done()
			var pl []byte
			var uris []string
			for ctx.Err() == nil {
				n, err := fetch(ctx, client, c.Base, &pl)
				if err == nil {
					uris = playlistURIs(pl, uris[:0])
					if len(uris) == 0 {
						err = errors.New("replay playlist without segments")
					}
				}
				v.count(ctx, n, err)
				for _, u := range uris {
					if err != nil || ctx.Err() != nil {
						break
					}
					n, err = fetch(ctx, client, dir+u, nil)
					v.count(ctx, n, err)
				}
				if err != nil {
					sleep(ctx, 100*time.Millisecond)
				}
			}
		})
		if !sleep(ctx, step) {
			return ctx.Err()
		}
	}
	return nil
}

// count adds one response of n bytes, or a failed request.
func (v *vodLoad) count(ctx context.Context, n int64, err error) {
	v.bytes.Add(n)
	switch {
	case err == nil:
		v.files.Add(1)
	case ctx.Err() == nil:
		v.errors.Add(1)
		v.firstErr.CompareAndSwap(nil, err.Error())
	}
}

// stopVOD stops the replay viewers and waits for them (load process).
func (l *load) stopVOD() {
	if l.vod == nil {
		return
	}
	l.vod.cancel()
	l.vod.wg.Wait()
	l.vod.client.CloseIdleConnections()
	l.vod = nil
}

// measureVOD counts what the replay viewers read over c.Window (load
// process): Bytes the bodies, Parts the responses (playlists, init
// sections and segments), Errors the failed requests.
func (l *load) measureVOD(c loadCmd, r *loadReply) error {
	v := l.vod
	if v == nil {
		return errors.New("no replay viewers to measure")
	}
	b0, f0, e0 := v.bytes.Load(), v.files.Load(), v.errors.Load()
	cpu0, t0 := cpuTime(), time.Now()
	sleep(l.ctx, c.Window)
	r.Cores = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	r.Bytes, r.Parts, r.Errors = v.bytes.Load()-b0, v.files.Load()-f0, int(v.errors.Load()-e0)
	if s, ok := v.firstErr.Load().(string); ok {
		r.FirstErr = s
	}
	return nil
}

// playlistURIs appends to uris the init section (EXT-X-MAP) and the
// segments of a media playlist, in order, as relative URIs.
func playlistURIs(pl []byte, uris []string) []string {
	for line := range bytes.Lines(pl) {
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
		case bytes.HasPrefix(line, []byte("#EXT-X-MAP:")):
			uris = append(uris, string(attr(line, "URI")))
		case line[0] != '#':
			uris = append(uris, string(line))
		}
	}
	return uris
}

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// get fetches url into *buf, reusing its capacity: viewers read every part
// without allocating a buffer per response.
func get(ctx context.Context, c *http.Client, url string, buf *[]byte) error {
	_, err := fetch(ctx, c, url, buf)
	return err
}

// fetcher is the HTTP client of a viewer: fetch reads url into *buf
// (reusing its capacity) or, with a nil buf, only counts the body's bytes.
type fetcher interface {
	fetch(ctx context.Context, url string, buf *[]byte) (int64, error)
}

// stdFetcher is net/http's client, which speaks HTTP/2 as well.
type stdFetcher struct{ c *http.Client }

func (f stdFetcher) fetch(ctx context.Context, url string, buf *[]byte) (int64, error) {
	return fetch(ctx, f.c, url, buf)
}

// fetch is get that, with a nil buf, discards the body through a pooled
// buffer and only counts its bytes: the viewers then hold no part in
// memory, so that memory growth is the server's and the connections'.
func fetch(ctx context.Context, c *http.Client, url string, buf *[]byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var n int64
	if buf == nil {
		n, err = io.Copy(io.Discard, resp.Body)
	} else {
		b := bytes.NewBuffer((*buf)[:0])
		n, err = b.ReadFrom(resp.Body)
		*buf = b.Bytes()
	}
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("%w %d for %s", errStatus, resp.StatusCode, url)
	}
	return n, nil
}

// partPos is one EXT-X-PART of a media playlist: its file number n
// (part{n}.m4s), its segment's media sequence number and its index there.
type partPos struct {
	n   int64
	msn int64
	idx int
}

// playlist is what a viewer needs from a media playlist.
type playlist struct {
	initURI string
	parts   []partPos
	lastSeg int64 // msn of the last complete segment, -1 if none
	hint    int64 // n of the EXT-X-PRELOAD-HINT part{n}.m4s, -1 if none
}

// parsePlaylist reads the parts of a shopcast media playlist. Segments are
// named seg{msn}.m4s and parts part{n}.m4s; the parts after the last
// segment line belong to the open segment, one past the last listed.
// Part tags cover only the last 3 target durations, so the oldest segment
// with parts may list only its last ones, numbered from idx 0: the viewer
// uses idx only for the newest part, whose segment is listed whole.
func parsePlaylist(b []byte) (playlist, error) {
	return parsePlaylistInto(b, nil)
}

// parsePlaylistInto is parsePlaylist appending the parts to parts[:0], so
// that a viewer reloading its playlist for every part does not allocate:
// the viewers' CPU is taken from the server they measure.
func parsePlaylistInto(b []byte, parts []partPos) (playlist, error) {
	pl := playlist{lastSeg: -1, hint: -1, parts: parts[:0]}
	var open [64]int64
	nOpen := 0
	nextMSN := int64(-1)
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		switch {
		case bytes.HasPrefix(line, []byte("#EXT-X-PART:")):
			uri := attr(line, "URI")
			n, ok := numberIn(uri, "part", ".m4s")
			if !ok {
				return pl, fmt.Errorf("part URI %q", uri)
			}
			if nOpen == len(open) {
				return pl, fmt.Errorf("more than %d parts in a segment", len(open))
			}
			open[nOpen] = n
			nOpen++
		case bytes.HasPrefix(line, []byte("seg")):
			msn, ok := numberIn(line, "seg", ".m4s")
			if !ok {
				return pl, fmt.Errorf("segment URI %q", line)
			}
			for i, n := range open[:nOpen] {
				pl.parts = append(pl.parts, partPos{n: n, msn: msn, idx: i})
			}
			nOpen = 0
			nextMSN = msn + 1
			pl.lastSeg = msn
		case bytes.HasPrefix(line, []byte("#EXT-X-PRELOAD-HINT:TYPE=PART,")):
			uri := attr(line, "URI")
			n, ok := numberIn(uri, "part", ".m4s")
			if !ok {
				return pl, fmt.Errorf("preload hint URI %q", uri)
			}
			pl.hint = n
		case bytes.HasPrefix(line, []byte("#EXT-X-MEDIA-SEQUENCE:")):
			v, err := strconv.ParseInt(string(line[len("#EXT-X-MEDIA-SEQUENCE:"):]), 10, 64)
			if err != nil {
				return pl, fmt.Errorf("media sequence: %w", err)
			}
			nextMSN = v
		case bytes.HasPrefix(line, []byte("#EXT-X-MAP:")):
			pl.initURI = string(attr(line, "URI"))
		}
	}
	for i, n := range open[:nOpen] {
		pl.parts = append(pl.parts, partPos{n: n, msn: nextMSN, idx: i})
	}
	if len(pl.parts) == 0 {
		return pl, fmt.Errorf("playlist without parts")
	}
	return pl, nil
}

// numberIn returns the decimal number between prefix and suffix of name.
func numberIn(name []byte, prefix, suffix string) (int64, bool) {
	digits, ok := bytes.CutPrefix(name, []byte(prefix))
	if !ok {
		return 0, false
	}
	if digits, ok = bytes.CutSuffix(digits, []byte(suffix)); !ok || len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// attr returns the quoted attribute name of a playlist tag line.
func attr(line []byte, name string) []byte {
	_, v, ok := bytes.Cut(line, []byte(name+"=\""))
	if !ok {
		return nil
	}
	v, _, _ = bytes.Cut(v, []byte{'"'})
	return v
}

// viewer is an LL-HLS client that follows the live edge part by part: a
// blocking playlist reload for the next part (_HLS_msn/_HLS_part), then a
// GET of that part, as RFC 8216bis 6.2.5.2 lets a client do.
type viewer struct {
	c    fetcher
	base string

	pl []byte // reused playlist buffer
	// keep makes the viewer hold each part's bytes for onPart; otherwise
	// onPart gets nil and the size.
	keep bool
	part []byte

	// errors counts failed requests; the viewer reloads and carries on.
	errors   int
	firstErr error
	// segmentEnds counts blocking reloads that returned because a segment
	// ended, before the next part existed.
	segmentEnds int
}

// reloadURL is the blocking reload of base's media playlist for the part at
// p. It asks for a delta update with date ranges skipped (_HLS_skip=v2), as
// hls.js does whenever a playlist says CAN-SKIP-DATERANGES=YES and its copy
// is recent: the viewer has the skipped lines from its previous reload.
func reloadURL(base string, p partPos) string {
	return fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d&_HLS_part=%d&_HLS_skip=v2", base, p.msn, p.idx)
}

// run follows the stream until ctx is done, calling onPart with each part's
// number, bytes (valid until onPart returns) and the time they were all in.
func (v *viewer) run(ctx context.Context, onPart func(n int64, body []byte, size int64, at time.Time)) {
	var cur partPos  // the last part received
	var want partPos // the position the blocking reload waits for
	var pl playlist  // the last playlist read
	have := false
	for ctx.Err() == nil {
		next, ok := partPos{}, false
		if have {
			// A viewer behind the live edge takes the parts it already
			// knows of without reloading.
			next, ok = find(pl.parts, cur.n+1)
		}
		if !ok {
			url := v.base + "stream.m3u8"
			if have {
				url = reloadURL(v.base, want)
			}
			// A pipelining viewer asks for the part after cur together
			// with the reload that waits for it.
			pipe, pipelined := v.c.(pipeliner)
			pipelined = pipelined && have && !v.keep
			var err error
			var partSize int64
			if pipelined {
				partSize, err = pipe.fetchPair(ctx, url, &v.pl, v.base+"part"+strconv.FormatInt(cur.n+1, 10)+".m4s")
			} else {
				err = v.get(ctx, url, &v.pl)
			}
			if !v.readPlaylist(ctx, &have, &pl, err) {
				continue
			}
			if !have {
				// Start at the live edge: the next part is the first one
				// waited on.
				cur, have = pl.parts[len(pl.parts)-1], true
				want = partPos{msn: cur.msn, idx: cur.idx + 1}
				continue
			}
			if next, ok = find(pl.parts, cur.n+1); !ok {
				if pl.lastSeg >= want.msn && want.msn == cur.msn {
					// The segment ended with the part we have: the next
					// part is the first of the next segment.
					v.segmentEnds++
					want = partPos{msn: cur.msn + 1}
					continue
				}
				// Fell out of the playlist window: rejoin at the live edge.
				v.note(fmt.Errorf("part%d.m4s not in the playlist after waiting for msn %d part %d", cur.n+1, want.msn, want.idx))
				have = false
				continue
			}
			if pipelined {
				onPart(next.n, nil, partSize, time.Now())
				cur = next
				want = partPos{msn: cur.msn, idx: cur.idx + 1}
				continue
			}
		}
		var buf *[]byte
		if v.keep {
			buf = &v.part
		}
		size, err := v.c.fetch(ctx, v.base+fmt.Sprintf("part%d.m4s", next.n), buf)
		if err != nil {
			v.fail(ctx, &have, err)
			continue
		}
		var body []byte
		if v.keep {
			body = v.part
		}
		onPart(next.n, body, size, time.Now())
		cur = next
		want = partPos{msn: cur.msn, idx: cur.idx + 1}
	}
}

func (v *viewer) get(ctx context.Context, url string, buf *[]byte) error {
	_, err := v.c.fetch(ctx, url, buf)
	return err
}

// runHinted follows the stream as Apple's LL-HLS clients do: for each part
// it sends, at once and on two connections, the blocking playlist reload
// for it and the GET of the part the last playlist's EXT-X-PRELOAD-HINT
// names. The origin answers the part request when the part is complete,
// independently of the playlist, so onPart's time is the part's own; the
// playlist names the next hint. The viewer keeps the part's bytes.
func (v *viewer) runHinted(ctx context.Context, onPart func(n int64, body []byte, size int64, at time.Time)) {
	var pl playlist
	var cur partPos
	have := false
	for ctx.Err() == nil {
		if !have || pl.hint < 0 {
			if !v.readPlaylist(ctx, &have, &pl, v.get(ctx, v.base+"stream.m3u8", &v.pl)) {
				continue
			}
			if pl.hint < 0 {
				v.fail(ctx, &have, errors.New("playlist without a preload hint"))
				continue
			}
			cur, have = pl.parts[len(pl.parts)-1], true
			continue
		}
		next := pl.hint
		plErr := make(chan error, 1)
		go func() {
			plErr <- v.get(ctx, reloadURL(v.base, partPos{msn: cur.msn, idx: cur.idx + 1}), &v.pl)
		}()
		size, err := v.c.fetch(ctx, v.base+"part"+strconv.FormatInt(next, 10)+".m4s", &v.part)
		at := time.Now()
		if perr := <-plErr; err == nil {
			err = perr
		}
		if !v.readPlaylist(ctx, &have, &pl, err) {
			continue
		}
		p, ok := find(pl.parts, next)
		if !ok {
			v.note(fmt.Errorf("hinted part%d.m4s not in the playlist that waited for it", next))
			have = false
			continue
		}
		onPart(next, v.part, size, at)
		cur = p
	}
}

// note counts an error and keeps the first one.
func (v *viewer) note(err error) {
	v.errors++
	if v.firstErr == nil {
		v.firstErr = err
	}
}

// readPlaylist parses the playlist in v.pl into *pl after the requests
// that fetched it returned err. On an error of either it fails (see fail)
// and returns false.
func (v *viewer) readPlaylist(ctx context.Context, have *bool, pl *playlist, err error) bool {
	if err == nil {
		*pl, err = parsePlaylistInto(v.pl, pl.parts)
	}
	if err != nil {
		v.fail(ctx, have, err)
		return false
	}
	return true
}

func (v *viewer) fail(ctx context.Context, have *bool, err error) {
	if ctx.Err() != nil {
		return
	}
	v.note(err)
	*have = false
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func find(parts []partPos, n int64) (partPos, bool) {
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i].n == n {
			return parts[i], true
		}
	}
	return partPos{}, false
}

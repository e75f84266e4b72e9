package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// llViewer is an LL-HLS player reduced to its requests: it follows the live
// edge part by part with a blocking playlist reload for the next part
// (_HLS_msn/_HLS_part, RFC 8216bis 6.2.5.2) and then a GET of that part, and
// records when each part was in and its SHA-256. It has its own connection,
// as a player on its own device does.
type llViewer struct {
	base string // http://HOST:PORT/live/NAME/
	c    *http.Client

	got      []gotPart
	requests int
	errors   int
	firstErr error

	h   hash.Hash
	buf bytes.Buffer
}

// gotPart is a part a viewer received: its number, hash and arrival time.
type gotPart struct {
	n   int64
	sum [sha256.Size]byte
	at  time.Time
}

func newLLViewer(base string) *llViewer {
	return &llViewer{
		base: base,
		c: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 1,
			// A blocking request is answered within 3 target durations.
			ResponseHeaderTimeout: 15 * time.Second,
		}},
		h: sha256.New(),
	}
}

// llPart is an EXT-X-PART of a media playlist: its file number (part{n}.m4s),
// its segment's media sequence number and its index there.
type llPart struct {
	n, msn int64
	idx    int
}

type llPlaylist struct {
	parts   []llPart
	lastSeg int64 // msn of the last complete segment, -1 if none
}

// parseLLPlaylist reads the parts of a shopcast media playlist: segments are
// seg{msn}.m4s and parts part{n}.m4s; the parts after the last segment line
// belong to the open segment, one past the last listed.
func parseLLPlaylist(b []byte) (llPlaylist, error) {
	pl := llPlaylist{lastSeg: -1}
	var open []int64
	next := int64(-1)
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			v, err := strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
			if err != nil {
				return pl, fmt.Errorf("media sequence: %w", err)
			}
			next = v
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			_, uri, _ := strings.Cut(line, `URI="`)
			uri, _, _ = strings.Cut(uri, `"`)
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(uri, "part"), ".m4s"), 10, 64)
			if err != nil {
				return pl, fmt.Errorf("part URI %q: %w", uri, err)
			}
			open = append(open, n)
		case strings.HasPrefix(line, "seg") && strings.HasSuffix(line, ".m4s"):
			msn, err := strconv.ParseInt(line[3:len(line)-4], 10, 64)
			if err != nil {
				return pl, fmt.Errorf("segment URI %q: %w", line, err)
			}
			for i, n := range open {
				pl.parts = append(pl.parts, llPart{n: n, msn: msn, idx: i})
			}
			open = open[:0]
			next, pl.lastSeg = msn+1, msn
		}
	}
	for i, n := range open {
		pl.parts = append(pl.parts, llPart{n: n, msn: next, idx: i})
	}
	if len(pl.parts) == 0 {
		return pl, errors.New("playlist without parts")
	}
	return pl, nil
}

func (pl llPlaylist) find(n int64) (llPart, bool) {
	for i := len(pl.parts) - 1; i >= 0; i-- {
		if pl.parts[i].n == n {
			return pl.parts[i], true
		}
	}
	return llPart{}, false
}

// get fetches url; with sum it hashes the body instead of keeping it.
func (v *llViewer) get(ctx context.Context, url string, sum *[sha256.Size]byte) ([]byte, error) {
	v.requests++
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	if sum != nil {
		v.h.Reset()
		if _, err := io.Copy(v.h, resp.Body); err != nil {
			return nil, err
		}
		v.h.Sum(sum[:0])
		return nil, nil
	}
	v.buf.Reset()
	_, err = v.buf.ReadFrom(resp.Body)
	return v.buf.Bytes(), err
}

// run follows the stream until ctx is done.
func (v *llViewer) run(ctx context.Context) {
	var (
		pl   llPlaylist
		cur  llPart // the last part received
		want llPart // the position the blocking reload waits for
		have bool
	)
	for ctx.Err() == nil {
		next, ok := llPart{}, false
		if have {
			// Behind the live edge: take the parts already listed.
			next, ok = pl.find(cur.n + 1)
		}
		if !ok {
			url := v.base + "stream.m3u8"
			if have {
				url += fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", want.msn, want.idx)
			}
			b, err := v.get(ctx, url, nil)
			if err == nil {
				pl, err = parseLLPlaylist(b)
			}
			if err != nil {
				v.fail(ctx, err)
				have = false
				continue
			}
			if !have {
				// Join at the live edge: the first part waited for is the
				// one after the last listed.
				cur, have = pl.parts[len(pl.parts)-1], true
				want = llPart{msn: cur.msn, idx: cur.idx + 1}
				continue
			}
			if next, ok = pl.find(cur.n + 1); !ok {
				if pl.lastSeg >= want.msn && want.msn == cur.msn {
					// The segment ended with the part we have: the next one
					// opens the next segment.
					want = llPart{msn: cur.msn + 1}
					continue
				}
				v.fail(ctx, fmt.Errorf("part%d.m4s not listed after waiting for msn %d part %d", cur.n+1, want.msn, want.idx))
				have = false
				continue
			}
		}
		var sum [sha256.Size]byte
		if _, err := v.get(ctx, v.base+fmt.Sprintf("part%d.m4s", next.n), &sum); err != nil {
			v.fail(ctx, err)
			have = false
			continue
		}
		v.got = append(v.got, gotPart{n: next.n, sum: sum, at: time.Now()})
		cur = next
		want = llPart{msn: cur.msn, idx: cur.idx + 1}
	}
}

// fail counts an error that is not the end of the run, and backs off a
// little before the viewer rejoins at the live edge.
func (v *llViewer) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	v.errors++
	if v.firstErr == nil {
		v.firstErr = err
	}
	select {
	case <-ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

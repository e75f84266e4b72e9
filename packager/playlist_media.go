package packager

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/hlsname"
)

// playlistVersion is the EXT-X-VERSION of media playlists: 9 for EXT-X-SKIP
// (RFC 8216bis 7).
const playlistVersion = 9

func seconds(d time.Duration) string {
	return strconv.FormatFloat(math.Round(d.Seconds()*1000)/1000, 'f', -1, 64)
}

// window returns the complete segments listed in the media playlist.
func (s *Stream) window() []*segment {
	n := s.m.cfg.WindowSegments
	if len(s.segs) <= n {
		return s.segs
	}
	return s.segs[len(s.segs)-n:]
}

// skipUntil is CAN-SKIP-UNTIL: six target durations, the minimum RFC
// 8216bis 4.4.3.8 allows, so delta updates skip as much as they may.
func (s *Stream) skipUntil() time.Duration { return 6 * s.tdDuration() }

// mediaPlaylist returns the media playlist for the current version,
// rendered once (see cached). Called with s.mu held.
func (s *Stream) mediaPlaylist(skip Skip) (*rendered, func()) {
	return s.cached(&s.cache[skip], func() *draft { return s.draftMedia(skip) })
}

// gzipBytes compresses a playlist. Every new playlist version is compressed
// once, so the writers, which allocate about a megabyte each, are reused.
func (m *Manager) gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := m.gzipWriters.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	} else {
		zw.Reset(&buf)
	}
	_, _ = zw.Write(b)
	_ = zw.Close()
	m.gzipWriters.Put(zw)
	return buf.Bytes()
}

// draftMedia takes the media playlist out of the stream. Called with s.mu
// held.
func (s *Stream) draftMedia(skip Skip) *draft {
	cfg := &s.m.cfg
	td := s.tdDuration()
	win := s.window()
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", playlistVersion)
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", s.td)
	// RFC 8216bis 4.4.3.8: PART-HOLD-BACK at least twice PART-TARGET; Apple's
	// authoring spec asks for three times.
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=%s,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=%s\n",
		seconds(s.skipUntil()), seconds(3*cfg.PartTarget))
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n", seconds(cfg.PartTarget))

	all := win
	if s.open != nil && len(s.open.parts) > 0 {
		all = append(win[:len(win):len(win)], s.open)
	}
	if len(all) == 0 {
		return &draft{head: b.Bytes()}
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", all[0].msn)
	if all[0].discNum > 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", all[0].discNum)
	}

	end := s.lastEnd
	skipped := 0
	// RFC 8216bis 6.2.5.1: _HLS_skip is ignored once the playlist has
	// EXT-X-ENDLIST.
	if skip != SkipNone && !s.ended {
		// RFC 8216bis 6.2.5.1: only segments older than the Skip Boundary
		// (CAN-SKIP-UNTIL from the end) may be skipped.
		for skipped < len(win) && end-(win[skipped].start+win[skipped].dur) >= s.skipUntil() {
			skipped++
		}
		if skipped > 0 {
			fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d", skipped)
			if skip == SkipV2 {
				// RFC 8216bis 4.4.5.2: the ids of date ranges that left the
				// playlist, so the client can drop them too.
				fmt.Fprintf(&b, ",RECENTLY-REMOVED-DATERANGES=\"%s\"", strings.Join(s.removedDateRanges(win[0].start), "\t"))
			}
			b.WriteByte('\n')
		}
	}
	// Date ranges overlapping the window, and scheduled ones ahead of it so
	// that players can preload their images. A v2 delta update leaves out
	// those that start in the skipped segments: the client has them.
	d := &draft{}
	if len(win) > 0 || s.open != nil {
		from := all[0].start
		skipBefore := time.Duration(-1 << 62)
		if skip == SkipV2 && skipped > 0 {
			skipBefore = all[skipped].start
		}
		d.lines = s.dateRanges(from, skipBefore)
	}
	d.head = b.Bytes()
	// The segment and part lines: about 100 bytes each.
	b = bytes.Buffer{}
	b.Grow(128 * len(all) * (2 + int(td/max(cfg.PartTarget, time.Millisecond))))

	var lastInit *initFile
	if skipped > 0 {
		lastInit = all[skipped-1].init
	}
	// RFC 8216bis 4.4.4.9: part tags "MAY be removed ... once they are
	// greater than three target durations from the end"; Apple's authoring
	// spec asks that they be. A complete segment lists its parts only if
	// all of them start within that distance (a segment keeps all its part
	// tags or none: _HLS_part counts them from the segment's first), and
	// only if it is one of the last three segments, open one included,
	// which is how hls-parser's strict mode counts it. With segments of a
	// target duration that is the open segment and the two before it; a
	// player holding back PART-HOLD-BACK (three parts) needs less. The
	// parts stay servable, and blocking requests for them answered, until
	// trim drops them.
	partsFrom := end - 3*td
	partSegs := len(all) - 3
	for i, seg := range all[skipped:] {
		if seg.disc && i+skipped > 0 {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if seg.init != lastInit {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", seg.init.name)
			lastInit = seg.init
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", seg.pdt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		if !seg.complete || i+skipped >= partSegs && seg.start >= partsFrom {
			for _, p := range seg.parts {
				fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%s,URI=\"%s\"", strconv.FormatFloat(p.dur.Seconds(), 'f', 5, 64), hlsname.Part(p.n))
				if p.independent {
					b.WriteString(",INDEPENDENT=YES")
				}
				b.WriteByte('\n')
			}
		}
		if seg.complete {
			fmt.Fprintf(&b, "#EXTINF:%s,\n%s\n", strconv.FormatFloat(seg.dur.Seconds(), 'f', 5, 64), hlsname.Segment(seg.msn))
		}
	}
	if s.ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	} else if s.pub != nil {
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s\"\n", hlsname.Part(s.nextPart))
	}
	d.tail = b.Bytes()
	return d
}

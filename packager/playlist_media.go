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

// window returns the complete segments listed in the source's media
// playlist.
func (s *Stream) window() []*segment { return s.windowOf(&s.rendition) }

// windowOf returns the complete segments listed in r's media playlist.
func (s *Stream) windowOf(r *rendition) []*segment {
	n := s.m.cfg.WindowSegments
	if len(r.segs) <= n {
		return r.segs
	}
	return r.segs[len(r.segs)-n:]
}

// edge is the media time at r's live edge: for the source, the end of the
// media published (lastEnd); for a variant, of the last part it has.
func (s *Stream) edge(r *rendition) time.Duration {
	if r == &s.rendition {
		return s.lastEnd
	}
	if r.open != nil && len(r.open.parts) > 0 {
		return r.open.start + r.open.dur
	}
	if n := len(r.segs); n > 0 {
		return r.segs[n-1].start + r.segs[n-1].dur
	}
	return 0
}

// skipUntil is CAN-SKIP-UNTIL: six target durations, the minimum RFC
// 8216bis 4.4.3.8 allows, so delta updates skip as much as they may.
func (s *Stream) skipUntil() time.Duration { return 6 * s.tdDuration() }

// mediaPlaylist returns r's media playlist for the current version,
// rendered once (see cached). Called with s.mu held.
func (s *Stream) mediaPlaylist(r *rendition, skip Skip) (*rendered, func()) {
	return s.cached(&r.cache[skip], func() *draft { return s.draftMedia(r, skip) })
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

// draftMedia takes rendition r's media playlist out of the stream. Called
// with s.mu held.
func (s *Stream) draftMedia(r *rendition, skip Skip) *draft {
	cfg := &s.m.cfg
	td := s.tdDuration()
	win := s.windowOf(r)
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", playlistVersion)
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", s.td)
	// RFC 8216bis 4.4.3.8: PART-HOLD-BACK at least twice PART-TARGET; Apple's
	// authoring spec asks for three times.
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=%s,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=%s\n",
		seconds(s.skipUntil()), seconds(3*s.partTarget()))
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n", seconds(s.partTarget()))

	all := win
	if r.open != nil && len(r.open.parts) > 0 {
		all = append(win[:len(win):len(win)], r.open)
	}
	if len(all) == 0 {
		return &draft{head: b.Bytes()}
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", all[0].msn)
	if all[0].discNum > 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", all[0].discNum)
	}

	end := s.edge(r)
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
	if len(win) > 0 || r.open != nil {
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
	if all[len(all)-1].complete && !s.ended {
		// Just after a segment closed, before the next one has a part, the
		// preload hint stands for the open segment in that count.
		if _, ok := s.preloadHint(r); ok {
			partSegs++
		}
	}
	for i, seg := range all[skipped:] {
		if seg.disc && i+skipped > 0 {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if seg.init != lastInit && seg.init != nil {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", seg.init.name)
			lastInit = seg.init
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", seg.pdt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		if !seg.complete || i+skipped >= partSegs && seg.start >= partsFrom {
			for _, p := range seg.parts {
				fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%s,URI=\"%s\"", strconv.FormatFloat(p.dur.Seconds(), 'f', 5, 64), hlsname.VariantPart(r.variant, p.n))
				if p.independent {
					b.WriteString(",INDEPENDENT=YES")
				}
				if p.gap {
					// RFC 8216bis 4.4.4.9: GAP=YES, the part is not available.
					b.WriteString(",GAP=YES")
				}
				b.WriteByte('\n')
			}
		}
		if seg.complete {
			if seg.gap {
				// RFC 8216bis 4.4.4.7: the segment is absent; a client
				// should not load it.
				b.WriteString("#EXT-X-GAP\n")
			}
			fmt.Fprintf(&b, "#EXTINF:%s,\n%s\n", strconv.FormatFloat(seg.dur.Seconds(), 'f', 5, 64), hlsname.VariantSegment(r.variant, seg.msn))
		}
	}
	if s.ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	} else if hint, ok := s.preloadHint(r); ok {
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s\"\n", hlsname.VariantPart(r.variant, hint))
	}
	s.renditionReports(&b, r)
	d.tail = b.Bytes()
	return d
}

// preloadHint returns the number of the part r publishes next, when a
// publisher feeds it. Called with s.mu held.
func (s *Stream) preloadHint(r *rendition) (int64, bool) {
	if r == &s.rendition {
		return s.nextPart, s.pub != nil
	}
	if v := s.variantOf(r.variant); v != nil && v.pub != nil && v.pub.joined {
		return v.pub.next, true
	}
	return 0, false
}

// renditionReports writes an EXT-X-RENDITION-REPORT for every rendition
// of the stream but r (RFC 8216bis 4.4.5.4): its live edge as of this
// playlist, so that a player switching renditions asks the right part.
// Called with s.mu held.
func (s *Stream) renditionReports(b *bytes.Buffer, r *rendition) {
	if len(s.variants) == 0 {
		return
	}
	report := func(o *rendition) {
		if o == r {
			return
		}
		msn, idx, ok := s.lastPartOf(o)
		if !ok {
			return
		}
		fmt.Fprintf(b, "#EXT-X-RENDITION-REPORT:URI=\"%s\",LAST-MSN=%d,LAST-PART=%d\n", hlsname.VariantMedia(o.variant), msn, idx)
	}
	report(&s.rendition)
	for _, v := range s.variants {
		report(&v.rendition)
	}
}

package packager

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/hlsname"
)

// The legacy HLS rendition's playlists are stream_ts.m3u8, the MPEG-TS
// media playlist (not low-latency, no parts, for players without fMP4 or
// LL-HLS; no fMP4 playlist lists it), and index_ts.m3u8, a multivariant
// playlist whose only variant is stream_ts.m3u8.

// tsPlaylistVersion is 3, for decimal EXTINF durations (RFC 8216bis 7).
const tsPlaylistVersion = 3

// tsWindow returns the TS segments of the playlist window: those of the
// fMP4 window, segment for segment. A segment of a publication without a
// track that fits TS has no TS segment and is left out; the discontinuity
// that starts the next publication stays. A gap segment of the aligned
// timeline is listed (EXT-X-GAP) while the rendition has segments, so that
// the numbers stay those of the fMP4 playlist.
func (s *Stream) tsWindow() []*segment {
	var out []*segment
	for _, seg := range s.window() {
		if s.ts.segment(seg.msn) != nil || seg.gap && len(s.ts.segs) > 0 {
			out = append(out, seg)
		}
	}
	return out
}

// draftTSMedia takes stream_ts.m3u8: the fMP4 playlist's segments with
// the same media sequence numbers, durations, discontinuities, program
// date-times and date ranges, as segN.ts. Called with s.mu held.
func (s *Stream) draftTSMedia() *draft {
	win := s.tsWindow()
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", tsPlaylistVersion)
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", s.td)
	// Every segment starts with a keyframe, PAT and PMT.
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	if len(win) == 0 {
		if s.ended {
			b.WriteString("#EXT-X-ENDLIST\n")
		}
		return &draft{head: b.Bytes()}
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", win[0].msn)
	if win[0].discNum > 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", win[0].discNum)
	}
	d := &draft{head: b.Bytes(), lines: s.dateRanges(win[0].start, time.Duration(-1<<62))}
	b = bytes.Buffer{}
	for i, seg := range win {
		if seg.disc && i > 0 {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", seg.pdt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		if seg.gap {
			// RFC 8216bis 4.4.4.7: the aligned timeline's segment this
			// node has no media for.
			b.WriteString("#EXT-X-GAP\n")
		}
		fmt.Fprintf(&b, "#EXTINF:%s,\n%s\n", strconv.FormatFloat(seg.dur.Seconds(), 'f', 5, 64), hlsname.TSSegment(seg.msn))
	}
	if s.ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	d.tail = b.Bytes()
	return d
}

// renderTSMultivariant writes index_ts.m3u8: one variant, stream_ts.m3u8,
// with the bit rates of its TS segments and the codecs TS carries.
func (s *Stream) renderTSMultivariant() []byte {
	var peak, total, dur float64
	for _, seg := range s.tsWindow() {
		ts := s.ts.segment(seg.msn)
		d := seg.dur.Seconds()
		if ts == nil || d <= 0 {
			continue
		}
		peak = max(peak, float64(len(ts.body)*8)/d)
		total += float64(len(ts.body) * 8)
		dur += d
	}
	avg := peak
	if dur > 0 {
		avg = total / dur
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-INDEPENDENT-SEGMENTS\n", tsPlaylistVersion)
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d", int64(peak), int64(avg))
	var cs []string
	video := false
	if p := s.ts.pub; p != nil {
		for _, t := range p.order {
			if s.ts.tracks[t.id] == nil {
				continue
			}
			if v := codecString(t.in.Codec); v != "" {
				cs = append(cs, v)
			}
			if t.video && !video {
				video = true
				if w, h := resolution(t.in.Codec); w > 0 && h > 0 {
					fmt.Fprintf(&b, ",RESOLUTION=%dx%d", w, h)
				}
			}
		}
	}
	if len(cs) > 0 {
		fmt.Fprintf(&b, ",CODECS=\"%s\"", strings.Join(cs, ","))
	}
	b.WriteString("\n" + hlsname.TSMedia + "\n")
	return b.Bytes()
}

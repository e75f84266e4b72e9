package packager

import (
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// tsRendition is a stream's legacy HLS rendition: MPEG-TS segments
// (segN.ts) aligned 1:1 with the fMP4 segments (the same MSN, duration,
// discontinuities and program date-time) and a non-LL media playlist
// (stream_ts.m3u8). Each TS segment is written part by part, from the very
// samples of the fMP4 parts, as the packager publishes them; when the fMP4
// segment closes its TS bytes are complete and from then on immutable and
// shared by every viewer.
//
// Locking: mu guards the muxer state (mux, open, openMSN, lastSize,
// items, payload). Fields changed under both the stream's write lock and mu
// (pub, tracks, id3, segs) can be read under either. A part's TS packets
// are muxed after the stream lock is released (drain), so that the fMP4
// part is published without waiting for them.
//
// Timestamps: a sample's TS PTS and DTS are its fMP4 presentation and
// decode times plus tsTimeOffset, on the 90 kHz clock (audio converted
// from its sample rate, rounding to the nearest tick). A cue's ID3 PES has
// PTS = its media time plus tsTimeOffset, on the same clock as the video.
type tsRendition struct {
	mu       sync.Mutex
	pending  bool // items hold a part to mux
	mux      tsMuxer
	pub      *publication
	tracks   map[int]*tsTrack // by fMP4 track ID; empty if no track fits TS
	id3      *tsES
	open     []byte // the open segment's TS bytes so far
	openMSN  int64
	segs     []*tsSegment // complete segments still servable, oldest first
	lastSize int
	items    []tsItem
	payload  []byte
	cache    cachedPlaylist // stream_ts.m3u8
	mvCache  cachedPlaylist // index_ts.m3u8
}

// tsSegment is a complete TS segment.
type tsSegment struct {
	msn  int64
	body []byte
	at   time.Time
}

// tsTrack is an fMP4 track as a TS elementary stream.
type tsTrack struct {
	es        *tsES
	codec     codecs.Codec
	timescale uint32
	// The last parameter sets seen (in band or in the codec
	// configuration), put in front of keyframes that lack them.
	vps, sps, pps []byte
}

// tsItem is one PES packet to write: a sample of a track, or an ID3 tag.
type tsItem struct {
	dts, pts int64 // 90 kHz, without tsTimeOffset
	t        *tsTrack
	smp      *fmp4.Sample
	id3      []byte
}

const (
	tsPlacedStart uint8 = 1 << iota
	tsPlacedEnd
)

// setup maps the publication's tracks to elementary streams: H.264, H.265
// and AAC; others (AV1, VP9, Opus) have no place in a legacy TS rendition
// and are left out. The ID3 stream comes last.
func (r *tsRendition) setup(p *publication) {
	r.pub = p
	r.tracks = map[int]*tsTrack{}
	// Continuity counters run on across publications.
	cc := map[uint16]byte{}
	for _, es := range r.mux.es {
		cc[es.pid] = es.cc
	}
	var es []*tsES
	var pcr uint16
	for _, t := range p.order {
		tt := &tsTrack{codec: t.in.Codec, timescale: t.timescale}
		var st byte
		switch c := t.in.Codec.(type) {
		case *codecs.H264:
			st, tt.sps, tt.pps = tsStreamTypeH264, c.SPS, c.PPS
		case *codecs.H265:
			st, tt.vps, tt.sps, tt.pps = tsStreamTypeH265, c.VPS, c.SPS, c.PPS
		case *codecs.MPEG4Audio:
			// ADTS has the profiles of AAC object types 1 to 4 only.
			if _, err := tt.adts(nil, nil); err != nil {
				p.s.log.Warn("mpeg-ts: audio track left out", "err", err)
				continue
			}
			st = tsStreamTypeAAC
		default:
			continue
		}
		pid := tsPIDFirstES + uint16(len(es))
		tt.es = &tsES{pid: pid, streamType: st, cc: cc[pid]}
		if pcr == 0 && (t.video || t == p.lead) {
			pcr = tt.es.pid
		}
		es = append(es, tt.es)
		r.tracks[t.id] = tt
	}
	if len(es) == 0 {
		r.mux.setStreams(nil, 0)
		return
	}
	if pcr == 0 {
		pcr = es[0].pid
	}
	pid := tsPIDFirstES + uint16(len(es))
	r.id3 = &tsES{pid: pid, streamType: tsStreamTypeMetadata, descriptors: tsMetadataDescriptor, cc: cc[pid]}
	r.mux.setStreams(append(es, r.id3), pcr)
}

// writePart queues the samples of a part just published, and the ID3 of
// the events it carries, for the open TS segment; drain muxes them. start
// and end are the part's media time range, first says it opens its
// segment. Called with s.mu held.
func (r *tsRendition) writePart(s *Stream, p *publication, tracks []*fmp4.PartTrack, start, end time.Duration, first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.muxPending(s)
	if r.pub != p {
		r.setup(p)
	}
	if len(r.tracks) == 0 || s.open == nil {
		return
	}
	if first {
		r.open = r.mux.writeTables(make([]byte, 0, r.lastSize+r.lastSize/8+4096))
		r.openMSN = s.open.msn
	} else if r.open == nil || r.openMSN != s.open.msn {
		return
	}

	items := r.items[:0]
	for _, pt := range tracks {
		tt := r.tracks[pt.ID]
		if tt == nil {
			continue
		}
		dts := pt.BaseTime
		for _, smp := range pt.Samples {
			d := tsScale(dts, tt.timescale)
			pts := tsScale(uint64(max(int64(dts)+int64(smp.PTSOffset), 0)), tt.timescale)
			items = append(items, tsItem{dts: d, pts: pts, t: tt, smp: smp})
			dts += uint64(smp.Duration)
		}
	}
	r.items = r.eventItems(s, items, start, end, first)
	r.pending = true
}

// drain muxes the part writePart queued, if any. The publisher calls it
// after releasing s.mu.
func (r *tsRendition) drain(s *Stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.muxPending(s)
}

// muxPending writes the queued part's PES packets to the open segment.
// Called with r.mu held.
func (r *tsRendition) muxPending(s *Stream) {
	if !r.pending {
		return
	}
	r.pending = false
	items := r.items
	// One stream in decode order: the demuxer buffers least.
	slices.SortStableFunc(items, func(a, b tsItem) int { return cmp.Compare(a.dts, b.dts) })

	off := clock90k(tsTimeOffset)
	for i := range items {
		it := &items[i]
		var err error
		switch {
		case it.id3 != nil:
			r.open = r.writePES(s, r.open, r.id3, tsStreamIDPrivate1, it.pts+off, -1, false, false, it.id3)
		case it.t.codec.IsVideo():
			key := !it.smp.IsNonSyncSample
			r.payload, err = it.t.annexB(r.payload[:0], it.smp.Payload, key)
			if err == nil {
				r.open = r.writePES(s, r.open, it.t.es, tsStreamIDVid, it.pts+off, it.dts+off, key, true, r.payload)
			}
		default:
			r.payload, err = it.t.adts(r.payload[:0], it.smp.Payload)
			if err == nil {
				r.open = r.writePES(s, r.open, it.t.es, tsStreamIDAud, it.pts+off, -1, true, false, r.payload)
			}
		}
		if err != nil {
			s.log.Warn("mpeg-ts sample", "err", err)
		}
	}
	clear(items)
	r.items = items[:0]
}

// writePES appends one PES packet. The PCR stream's packets carry the PCR,
// tsPCRDelay behind their DTS.
func (r *tsRendition) writePES(s *Stream, b []byte, es *tsES, streamID byte, pts, dts int64, rai, video bool, payload []byte) []byte {
	pes, ok := pesHeader(r.mux.pesBuf[:0], streamID, pts, dts, len(payload))
	if !ok {
		s.log.Warn("mpeg-ts: PES payload too large, dropped", "pid", es.pid, "bytes", len(payload))
		return b
	}
	pes = append(pes, payload...)
	r.mux.pesBuf = pes
	pcr := int64(-1)
	if es.pid == r.mux.pcrPID {
		if dts < 0 {
			dts = pts
		}
		pcr = dts - tsPCRDelay
	}
	return r.mux.packetize(b, es, pes, pcr, rai)
}

// eventItems adds the ID3 tags of the events that the part [start, end)
// carries, by the rules of partBoxes for emsg: a start or an end not
// carried yet once its time is before the part's end, and, in the first
// part of a segment, every active event again for viewers who join there.
// The tag is the one the event's emsg carries: the same bytes. Its PTS
// is the event's media time, or the segment start for an event that began
// before the segment (a PES is not presented before its segment).
func (r *tsRendition) eventItems(s *Stream, items []tsItem, start, end time.Duration, first bool) []tsItem {
	segStart := s.open.start
	add := func(tag []byte, at time.Duration) {
		if tag == nil {
			return
		}
		t := max(clock90k(max(at, segStart)), 0)
		items = append(items, tsItem{dts: t, pts: t, id3: tag})
	}
	for _, es := range s.live {
		if es.cancelled || es.pendingNow {
			continue
		}
		st := es.tsPlaced
		active := es.media < end && (es.end == 0 || es.end > start)
		if (st&tsPlacedStart == 0 && es.media < end) || (first && active && st&tsPlacedStart != 0) {
			add(es.ev.ID3, es.media)
			st |= tsPlacedStart
		}
		if es.explicitEnd && st&tsPlacedEnd == 0 && es.end < end {
			add(es.ev.End.ID3, es.end)
			st |= tsPlacedEnd
		}
		es.tsPlaced = st
	}
	return items
}

// closeSegment completes the TS segment of seg, which the packager just
// completed, and drops the TS segments that left the fMP4 retention.
// Called with s.mu held, after s.trim.
func (r *tsRendition) closeSegment(s *Stream, seg *segment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.muxPending(s)
	if r.open != nil && r.openMSN == seg.msn {
		r.segs = append(r.segs, &tsSegment{msn: seg.msn, body: r.open, at: seg.at})
		r.lastSize = len(r.open)
	}
	r.open = nil
	for len(r.segs) > 0 && (len(s.segs) == 0 || r.segs[0].msn < s.segs[0].msn) {
		r.segs[0] = nil
		r.segs = r.segs[1:]
	}
}

// segment returns the TS segment msn, or nil.
func (r *tsRendition) segment(msn int64) *tsSegment {
	for _, ts := range r.segs {
		if ts.msn == msn {
			return ts
		}
	}
	return nil
}

// errShortNALU is a video sample whose NAL unit lengths do not add up.
var errShortNALU = errors.New("mpeg-ts: malformed length-prefixed NAL unit")

// annexB appends an fMP4 video sample (length-prefixed NAL units) as an
// Annex-B access unit: an access unit delimiter first (Apple's HLS
// authoring spec and iOS want one) and, in front of a keyframe that lacks
// them, the parameter sets, which fMP4 keeps in the init segment.
func (t *tsTrack) annexB(b, avcc []byte, key bool) ([]byte, error) {
	h265 := t.es.streamType == tsStreamTypeH265
	typ := func(n []byte) byte {
		if h265 {
			return n[0] >> 1 & 0x3F
		}
		return n[0] & 0x1F
	}
	var audT, vpsT, spsT, ppsT byte = 9, 0xFF, 7, 8
	if h265 {
		audT, vpsT, spsT, ppsT = 35, 32, 33, 34
	}
	var seen [3]bool // vps, sps, pps
	firstAUD := false
	for i, rest := 0, avcc; len(rest) > 0; i++ {
		if len(rest) < 4 {
			return b, errShortNALU
		}
		n := binary.BigEndian.Uint32(rest)
		if n == 0 || uint64(n) > uint64(len(rest)-4) {
			return b, errShortNALU
		}
		nalu := rest[4 : 4+n]
		rest = rest[4+n:]
		switch typ(nalu) {
		case audT:
			firstAUD = firstAUD || i == 0
		case vpsT:
			seen[0], t.vps = true, nalu
		case spsT:
			seen[1], t.sps = true, nalu
		case ppsT:
			seen[2], t.pps = true, nalu
		}
	}
	sc := []byte{0, 0, 0, 1}
	if !firstAUD {
		if h265 {
			b = append(append(b, sc...), 35<<1, 1, 0x50)
		} else {
			b = append(append(b, sc...), 9, 0xF0)
		}
	}
	if key {
		if h265 && !seen[0] && len(t.vps) > 0 {
			b = append(append(b, sc...), t.vps...)
		}
		if !seen[1] && len(t.sps) > 0 {
			b = append(append(b, sc...), t.sps...)
		}
		if !seen[2] && len(t.pps) > 0 {
			b = append(append(b, sc...), t.pps...)
		}
	}
	for rest := avcc; len(rest) > 0; {
		n := binary.BigEndian.Uint32(rest)
		b = append(append(b, sc...), rest[4:4+n]...)
		rest = rest[4+n:]
	}
	return b, nil
}

// adts appends an AAC access unit with its ADTS header.
func (t *tsTrack) adts(b, au []byte) ([]byte, error) {
	c := t.codec.(*codecs.MPEG4Audio)
	// Every config the packager gets was decoded, which sets ChannelConfig
	// (mediacommon's decoder fills the deprecated ChannelCount from it): the
	// ADTS header carries the value the AudioSpecificConfig had.
	pkt := mpeg4audio.ADTSPackets{{
		Type:          c.Config.Type,
		SampleRate:    c.Config.SampleRate,
		ChannelConfig: c.Config.ChannelConfig,
		AU:            au,
	}}
	enc, err := pkt.Marshal()
	if err != nil {
		return b, err
	}
	return append(b, enc...), nil
}

package packager

import (
	"time"
)

// The aligned timeline (Config.AlignedTimeline) numbers segments and parts
// from time instead of arrival, so that two nodes fed the same encoder
// publish interchangeable playlists (docs/redundancy.md):
//
//   - Media time 0 is numberEpoch; a segment's EXT-X-PROGRAM-DATE-TIME is
//     numberEpoch plus its media time, exactly.
//   - Segment MSN covers media time [MSN*G, (MSN+1)*G), G being
//     TargetDuration, which the encoder's fixed keyframe interval must
//     equal.
//   - A publication's first keyframe, arriving at wall time W, is put at
//     media time floor((W-numberEpoch)/G)*G; from there media time follows
//     the publisher's timestamps, so every node fed by it gets the same
//     decode times.
//   - Each segment has alignedParts parts on a fixed grid of G/alignedParts;
//     part index I of segment MSN is the file part{MSN*alignedParts+I}.m4s
//     on every node.
//   - Whatever a node lacks (its publisher was gone, frames were dropped,
//     a keyframe was missing) is listed as EXT-X-GAP segments and GAP=YES
//     parts, so that media sequence numbers and part indexes stay the same
//     as on a node that has it.

// aligned reports whether the stream numbers from time.
func (s *Stream) aligned() bool { return s.m.cfg.AlignedTimeline }

// gop is G, the duration of every segment of the aligned timeline.
func (s *Stream) gop() time.Duration { return s.m.cfg.TargetDuration }

// alignedParts is the number of parts per segment: G over PartTarget,
// rounded, so that the default 333ms in 2s segments makes six parts of ten
// frames at 30 fps (seven would make parts of 8.6 frames, under the 85% of
// PART-TARGET Apple's authoring spec asks of all but a segment's last).
func (s *Stream) alignedParts() int64 {
	g, pt := s.gop(), s.m.cfg.PartTarget
	return max(int64((g+pt/2)/pt), 1)
}

// partTarget is EXT-X-PART-INF's PART-TARGET: the configured one, or on
// the aligned timeline its grid rounded up to the millisecond, which every
// part stays within (RFC 8216bis 4.4.3.7).
func (s *Stream) partTarget() time.Duration {
	if !s.aligned() {
		return s.m.cfg.PartTarget
	}
	return (s.partGrid() + time.Millisecond - 1).Truncate(time.Millisecond)
}

// partGrid is the length of one part of the aligned grid.
func (s *Stream) partGrid() time.Duration { return s.gop() / time.Duration(s.alignedParts()) }

// anchorMSN is the segment that a publication whose first keyframe arrived
// at wall time w starts: the one whose grid slot holds w. Flooring keeps
// the program date-time at or before the arrival (never in the future).
func (s *Stream) anchorMSN(w time.Time) int64 {
	if a := s.m.cfg.TimelineAnchor; a != nil {
		return a(s.name, w)
	}
	d := w.Sub(numberEpoch)
	g := s.gop()
	msn := int64(d / g)
	if d < 0 && d%g != 0 {
		msn--
	}
	return max(msn, 0)
}

// alignedMSN is the segment a lead frame at media time at, half a frame
// long, falls in: a keyframe a few milliseconds early (timestamps rounded
// to the millisecond) starts the segment it is early for.
func (s *Stream) alignedMSN(at, half time.Duration) int64 {
	return int64((at + half) / s.gop())
}

// alignedIndex is the grid index within segment msn of a frame at media
// time at, clamped to the segment's parts.
func (s *Stream) alignedIndex(msn int64, at, half time.Duration) int {
	off := at + half - time.Duration(msn)*s.gop()
	if off < 0 {
		return 0
	}
	return int(min(int64(off/s.partGrid()), s.alignedParts()-1))
}

// alignedStart anchors publication p on the aligned timeline at the lead
// keyframe that arrived at wall time at. It reports false when the slot is
// taken (a publisher back within the segment its predecessor published
// last): the unit is dropped and the next keyframe tries again.
func (p *publication) alignedStart(u time.Duration, at time.Time) bool {
	s := p.s
	msn := s.anchorMSN(at)
	base := time.Duration(msn) * s.gop()
	if s.anchored && (msn < s.nextMSN || base < s.mediaEnd()) {
		return false
	}
	p.started = true
	p.origin = u
	p.mediaBase = base
	p.wallBase = numberEpoch.Add(base)
	if !s.anchored {
		s.nextMSN, s.anchored = msn, true
	}
	return true
}

// writeLeadAligned is writeLead on the aligned timeline: segments start on
// the keyframe of their grid slot, parts end on the part grid.
func (p *publication) writeLeadAligned(t *track, smp *sample) error {
	s := p.s
	at := t.duration(smp.dts)
	half := t.duration(uint64(smp.Duration) / 2)
	msn := s.alignedMSN(at, half)
	if smp.key {
		if s.open != nil && msn > s.open.msn {
			if err := p.closePart(); err != nil {
				return err
			}
			s.closeSegment()
		}
		if s.open == nil && msn >= s.nextMSN {
			s.fillGaps(msn)
			// The segment starts on its grid slot, whatever the
			// keyframe's rounding: its program date-time is exact.
			start := time.Duration(msn) * s.gop()
			s.openSegment(start, numberEpoch.Add(start), p.init, p.disc)
			p.disc = false
		}
	} else if s.open != nil && msn > s.open.msn {
		// The keyframe that starts the next segment is missing: this
		// segment ends on its grid, and the frames up to the next keyframe
		// cannot be decoded.
		if !p.warnedGOP {
			// Lost on the way, or an encoder whose keyframe interval is
			// not the target duration: once per publication.
			p.warnedGOP = true
			s.log.Warn("aligned timeline: no keyframe at a segment's start; the encoder's keyframe interval must be the target duration",
				"msn", msn, "target_duration", s.gop(), "remote", p.info.Remote)
		}
		if err := p.closePart(); err != nil {
			return err
		}
		s.closeSegment()
	}
	if s.open == nil {
		s.stats.alignedDropped.Add(1)
		return nil
	}
	idx := s.alignedIndex(s.open.msn, at, half)
	if p.partLen > 0 && idx != p.partIdx {
		if err := p.closePart(); err != nil {
			return err
		}
	}
	if p.partLen == 0 {
		p.partStart = smp.dts
		p.partKey = smp.key
		p.partIdx = idx
	}
	p.pending[t] = append(p.pending[t], smp)
	p.partLen++
	s.open.frames++
	// The part closes on its last frame, predicted from this frame's
	// duration: the next one starts on the grid's next slot.
	end := at + t.duration(uint64(smp.Duration))
	segEnd := time.Duration(s.open.msn+1) * s.gop()
	if end+half >= segEnd || s.alignedIndex(s.open.msn, end, half) > idx {
		return p.closePart()
	}
	return nil
}

// padParts lists GAP=YES parts in the open segment for the grid slots
// before index idx that no frame filled. Called with s.mu held.
func (s *Stream) padParts(idx int) {
	seg := s.open
	for i := len(seg.parts); i < idx; i++ {
		g := &part{n: seg.msn*s.alignedParts() + int64(i), index: i, dur: s.partGrid(), gap: true, at: time.Now(), seg: seg}
		seg.parts = append(seg.parts, g)
		seg.dur += g.dur
		s.stats.alignedGapParts.Add(1)
	}
}

// fillGaps lists the segments from nextMSN to msn, which this node has no
// media for, as EXT-X-GAP segments of G with GAP=YES parts. More than the
// servable segments are not listed: the older ones would be trimmed at
// once, and the playlist starts after the gap. Called with s.mu held.
func (s *Stream) fillGaps(msn int64) {
	if msn <= s.nextMSN {
		s.nextMSN = max(s.nextMSN, msn)
		return
	}
	keep := int64(s.m.cfg.WindowSegments + s.m.cfg.RetainSegments)
	from := s.nextMSN
	if len(s.segs) == 0 {
		// Nothing listed yet: the playlist simply starts at msn.
		from = msn
	}
	s.stats.alignedGapSegments.Add(msn - from)
	if msn-from > keep {
		from = msn - keep
		for _, old := range s.segs {
			for _, p := range old.parts {
				s.dropPart(p)
			}
		}
		s.segs = nil
	}
	var last *initFile
	if n := len(s.segs); n > 0 {
		last = s.segs[n-1].init
	} else if s.pub != nil {
		last = s.pub.init
	}
	np := s.alignedParts()
	for m := from; m < msn; m++ {
		start := time.Duration(m) * s.gop()
		g := &segment{msn: m, start: start, pdt: numberEpoch.Add(start), dur: s.gop(), init: last,
			discNum: s.discNum, complete: true, gap: true, at: time.Now()}
		for i := range np {
			g.parts = append(g.parts, &part{n: m*np + i, index: int(i), dur: s.partGrid(), gap: true, seg: g})
		}
		s.segs = append(s.segs, g)
		s.trim()
		s.variantsSegmentDone(g)
	}
	s.nextMSN = msn
	s.notify()
}

// checkGOP counts a complete segment of the aligned timeline whose duration
// is off G by more than half a frame: the encoder's keyframe interval is
// not G, or the node lacked frames. Called with s.mu held.
func (s *Stream) checkGOP(seg *segment) {
	// Listed durations follow the grid; the media is what tells: its
	// frames' span, off G by more than rounding (an eighth of a part
	// slot, 42ms at the default 333ms) when the encoder's GOP is not G or
	// frames were lost.
	if d := s.gop() - seg.media; d > s.partGrid()/8 || d < -s.partGrid()/8 {
		s.stats.alignedOffGOP.Add(1)
	}
}

package packager

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/hlsname"
)

// ErrNoSource is returned by Publish for a variant of a stream that has no
// live source publication to follow.
var ErrNoSource = errors.New("no source publication to follow")

// ErrTooManyVariants is returned by Publish for a new variant of a stream
// that has Config.MaxVariants.
var ErrTooManyVariants = errors.New("too many variants")

// ErrSourceGone is returned by a variant's WriteUnit once the source
// publication it followed closed or was superseded: the variant's
// publisher closes and publishes again for the new source.
var ErrSourceGone = errors.New("source publication gone")

// variant is one more rendition of a stream's picture (an adaptive bitrate
// ladder's rung): a publication of one video track on the source's clock,
// packaged as a follower of the source. The source's lead track alone
// decides where parts and segments end; when the source publishes part N
// covering media time [from, to), the variant publishes its own part N: its
// video samples in that range and the same audio samples and emsg boxes as
// the source's part N, muxed in (see doc.go for why audio is muxed per
// variant). Same media sequence number and part number, same media time,
// in every rendition. A variant's segment N holds its parts of source
// segment N; one it could not fill (it joined late, lost its publisher, had
// no keyframe at the segment's start) is listed with EXT-X-GAP, so that its
// playlist keeps the source's numbering.
type variant struct {
	name string
	rendition
	pub     *variantPub // nil while no publisher feeds it
	initSeq int64       // number of its latest init segment
	// openSrc is the source segment the open segment mirrors.
	openSrc *segment
	// pendingGap is a gap segment listed once its source segment completes
	// (its duration is the source's).
	pendingGap *segment
	lastInit   *initFile // the latest publication's, for gap segments
	stats      *variantStats
}

// variantPub is one publisher's session feeding a variant. All its methods
// but the exported ones run under the stream's lock.
type variantPub struct {
	v    *variant
	s    *Stream
	src  *publication // the source publication it follows
	info ingest.PublishInfo
	in   *ingest.Track
	t    *track
	init *initFile
	// audioID maps a source track's fMP4 id to the variant's.
	audioID map[int]int

	pending []*sample // built, not in a part yet, in decode order
	joined  bool      // next is a part of the segment it is filling
	next    int64     // the source part number its next part takes
	frames  int       // video samples in the open segment

	done, superseded, gone bool
}

// variantOf returns the stream's variant named v, nil if none. Called with
// s.mu held.
func (s *Stream) variantOf(v string) *variant {
	for _, vr := range s.variants {
		if vr.name == v {
			return vr
		}
	}
	return nil
}

// renditionOf returns the rendition a file name belongs to, nil when the
// stream has no such variant. Called with s.mu held.
func (s *Stream) renditionOf(v string) *rendition {
	if v == "" {
		return &s.rendition
	}
	if vr := s.variantOf(v); vr != nil {
		return &vr.rendition
	}
	return nil
}

// publishVariant starts a variant's publication following the current
// source publication.
func (m *Manager) publishVariant(info ingest.PublishInfo) (ingest.Publication, error) {
	if err := hlsname.CheckVariant(info.Variant); err != nil {
		return nil, err
	}
	if len(info.Tracks) != 1 || info.Tracks[0] == nil || info.Tracks[0].Codec == nil || !info.Tracks[0].Codec.IsVideo() {
		return nil, fmt.Errorf("%w: a variant carries one video track", ErrUnsupportedCodec)
	}
	s, ok := m.Stream(info.Name)
	if !ok {
		return nil, fmt.Errorf("%w: stream %q", ErrNoSource, info.Name)
	}
	vp, err := s.attachVariant(info)
	if err != nil {
		return nil, err
	}
	s.log.Info("variant publisher started", "variant", info.Variant, "proto", info.Proto, "remote", info.Remote)
	return vp, nil
}

// attachVariant makes a new publication of a variant, superseding the
// variant's current one.
func (s *Stream) attachVariant(info ingest.PublishInfo) (*variantPub, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.pub
	if s.ended || src == nil || src.done || src.superseded {
		return nil, fmt.Errorf("%w: stream %q", ErrNoSource, info.Name)
	}
	if !src.lead.video {
		return nil, fmt.Errorf("%w: the source of stream %q has no video", ErrNoSource, info.Name)
	}
	in := info.Tracks[0]
	t, err := newTrack(in, 1)
	if err != nil {
		return nil, err
	}
	v := s.variantOf(info.Variant)
	if v == nil {
		if len(s.variants) >= s.m.cfg.MaxVariants {
			return nil, fmt.Errorf("%w: stream %q has %d variants already", ErrTooManyVariants, info.Name, len(s.variants))
		}
		v = &variant{name: info.Variant, rendition: rendition{variant: info.Variant, parts: map[int64]*part{}}, initSeq: -1, stats: s.stats.variant(info.Variant)}
		s.variants = append(s.variants, v)
	}
	vp := &variantPub{v: v, s: s, src: src, info: info, in: in, t: t, audioID: map[int]int{}}
	// The init segment: the variant's video, then the source's audio
	// tracks, whose samples its parts carry.
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: t.timescale, Codec: in.Codec}}}
	codecList := []ingest.Track{*in}
	for _, st := range src.order {
		if st.video {
			continue
		}
		id := len(init.Tracks) + 1
		vp.audioID[st.id] = id
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: id, TimeScale: st.timescale, Codec: st.in.Codec})
		codecList = append(codecList, *st.in)
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("variant init segment: %w", err)
	}
	// Numbered from the part counter, which never goes back (FirstNumbers),
	// so that an init name is never reused for other bytes.
	v.initSeq = max(s.nextPart, v.initSeq+1)
	vp.init = &initFile{name: hlsname.VariantInit(v.name, v.initSeq), body: buf.Bytes(), at: time.Now(), variant: v}
	for _, c := range codecList {
		vp.init.codecs = append(vp.init.codecs, c.Codec)
	}
	setVP9Level(vp.init.body, vp.init.codecs)
	if old := v.pub; old != nil {
		old.finish()
		old.superseded = true
		s.log.Info("variant publisher replaced", "variant", v.name, "remote", info.Remote, "old_remote", old.info.Remote)
	}
	v.pub = vp
	v.lastInit = vp.init
	s.inits[vp.init.name] = vp.init
	v.stats.publishes.Add(1)
	s.notify()
	return vp, nil
}

// WriteUnit implements ingest.Publication.
func (vp *variantPub) WriteUnit(u *ingest.Unit) error {
	s := vp.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case vp.superseded:
		return ErrSuperseded
	case vp.gone:
		return fmt.Errorf("variant %s: %w", vp.v.name, ErrSourceGone)
	case vp.done:
		return io.ErrClosedPipe
	}
	if u.Track != vp.in {
		return errors.New("unit of a track the variant does not have")
	}
	if len(u.AU) == 0 || slices.ContainsFunc(u.AU, func(b []byte) bool { return len(b) == 0 }) {
		return fmt.Errorf("variant %s: empty access unit or NAL unit", vp.v.name)
	}
	vp.v.stats.unit(u)
	src := vp.src
	if !src.started {
		// Nothing to follow yet: the source's first keyframe sets the clock.
		return nil
	}
	if len(vp.pending) == 0 && !vp.joined && !vp.t.isKey(u) {
		return nil // it can only join on a keyframe
	}
	smp, err := vp.t.build(u, src.origin, src.mediaBase)
	if err != nil || smp == nil {
		return err
	}
	vp.pending = append(vp.pending, smp)
	vp.follow(false)
	return nil
}

// WriteData implements ingest.Publication: a variant's data messages are
// the source's, already taken from it.
func (vp *variantPub) WriteData(*ingest.Data) {}

// Close implements ingest.Publication. The stream goes on: the variant
// publishes what it has and waits for a new publisher.
func (vp *variantPub) Close() {
	s := vp.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if vp.done {
		return
	}
	vp.done = true
	vp.v.stats.disconnects.Add(1)
	if vp.superseded || vp.gone {
		return
	}
	vp.finish()
	s.notify()
}

// finish publishes what the variant can of the parts the source
// published, and leaves the variant without a publisher.
func (vp *variantPub) finish() {
	vp.follow(true)
	v := vp.v
	if v.pub == vp {
		v.pub = nil
		v.settle(vp.s)
	}
}

// sourceGone tells the variants following src that it closed or was
// superseded. Called with s.mu held, after src's last part and segment
// were published.
func (s *Stream) sourceGone(src *publication) {
	for _, v := range s.variants {
		if vp := v.pub; vp != nil && vp.src == src {
			vp.finish()
			vp.gone = true
		}
	}
}

// eps is how far from a source boundary a variant's frame may fall and
// still count as on it: half a frame interval.
func (vp *variantPub) eps() time.Duration {
	d := vp.t.estDur
	if d == 0 {
		d = vp.t.timescale / 30
	}
	return vp.t.duration(uint64(d) / 2)
}

// maxPendingSpan bounds the media time a variant's unplaced samples span:
// a variant so far ahead of its source, or with no keyframe where the
// source has one, drops its oldest.
func (s *Stream) maxPendingSpan() time.Duration { return 3 * s.tdDuration() }

// follow publishes the variant's parts that the source's parts and the
// samples it has complete: part N once the variant has a sample reaching
// the end of source part N (or, when final, whatever it has of it).
// Called with s.mu held.
func (vp *variantPub) follow(final bool) {
	s, v := vp.s, vp.v
	eps := vp.eps()
	if n := len(vp.pending); n > 1 {
		if span := vp.t.duration(vp.pending[n-1].dts - vp.pending[0].dts); span > s.maxPendingSpan() {
			vp.drop(1)
			vp.joined = false
		}
	}
	for {
		if !vp.joined && !vp.join(eps) {
			return
		}
		p := s.parts[vp.next]
		if p == nil {
			if vp.next < s.nextPart {
				// The source part is gone already: too far behind.
				s.log.Warn("variant behind the source's parts: it rejoins", "variant", v.name, "part", vp.next)
				vp.joined = false
				v.settle(s)
				continue
			}
			return // not published yet
		}
		if p.pub != vp.src {
			vp.joined = false
			return
		}
		// The samples in [from, to) of the source part's media time.
		cut := 0
		for cut < len(vp.pending) && vp.t.duration(vp.pending[cut].dts) < p.to-eps {
			cut++
		}
		if !final {
			reached := cut < len(vp.pending)
			if !reached && cut > 0 {
				last := vp.pending[cut-1]
				reached = vp.t.duration(last.dts+uint64(last.Duration)) >= p.to-eps
			}
			if !reached {
				return
			}
		}
		if p.index == 0 {
			if cut == 0 || !vp.pending[0].key {
				// No keyframe where the source's segment starts: this
				// segment is a gap; try the next.
				if cut > 0 {
					s.log.Warn("variant has no keyframe at the source's segment start", "variant", v.name, "msn", p.seg.msn)
				}
				vp.joined = false
				v.settle(s)
				if final {
					return
				}
				continue
			}
			v.openSegment(s, p.seg)
			vp.frames = 0
		}
		if v.openSrc != p.seg {
			vp.joined = false
			continue
		}
		if err := vp.writePart(p, vp.pending[:cut]); err != nil {
			s.log.Warn("variant part", "variant", v.name, "err", err)
		}
		vp.drop(cut)
		vp.next++
		v.complete(s)
		s.notify()
		if final && len(vp.pending) == 0 {
			return
		}
	}
}

// drop forgets the first n pending samples.
func (vp *variantPub) drop(n int) {
	clear(vp.pending[:n])
	vp.pending = vp.pending[n:]
	if len(vp.pending) == 0 {
		vp.pending = nil
	}
}

// join finds the source segment the first pending keyframe starts: the
// variant fills segments from the first whose start it has a keyframe on.
// It reports whether the variant joined. Called with s.mu held.
func (vp *variantPub) join(eps time.Duration) bool {
	s := vp.s
	for {
		i := slices.IndexFunc(vp.pending, func(smp *sample) bool { return smp.key })
		if i < 0 {
			vp.drop(len(vp.pending))
			return false
		}
		vp.drop(i)
		at := vp.t.duration(vp.pending[0].dts)
		// The source's segments of this publication, newest first.
		var newest time.Duration = -1
		for j := len(s.segs); j >= 0; j-- {
			seg := s.open
			if j < len(s.segs) {
				seg = s.segs[j]
			}
			if seg == nil || len(seg.parts) > 0 && seg.parts[0].pub != vp.src || seg.init != vp.src.init {
				if j < len(s.segs) {
					break
				}
				continue
			}
			newest = max(newest, seg.start)
			if d := seg.start - at; d <= eps && d >= -eps {
				vp.next = s.nextPart
				if len(seg.parts) > 0 {
					vp.next = seg.parts[0].n
				}
				vp.joined = true
				return true
			}
			if seg.start < at-eps {
				break
			}
		}
		// No source segment starts on this keyframe. Wait while the source
		// may still start one there; else try the next keyframe.
		if newest < 0 || at > newest+eps && s.lastEnd <= at+eps {
			return false
		}
		vp.drop(1)
	}
}

// writePart publishes the variant's part of source part p with the
// samples smps. Called with s.mu held.
func (vp *variantPub) writePart(p *part, smps []*sample) error {
	v := vp.v
	fp := fmp4.Part{SequenceNumber: uint32(p.n + 1), Tracks: make([]*fmp4.PartTrack, 0, 1+len(p.shared))}
	size := len(p.boxes) + 1024
	if len(smps) > 0 {
		pt := &fmp4.PartTrack{ID: 1, BaseTime: smps[0].dts, Samples: make([]*fmp4.Sample, len(smps))}
		for i, smp := range smps {
			pt.Samples[i] = smp.Sample
			size += len(smp.Payload) + 16
		}
		fp.Tracks = append(fp.Tracks, pt)
		smps[len(smps)-1].sealed = true
		vp.frames += len(smps)
	}
	for _, st := range p.shared {
		id := vp.audioID[st.ID]
		if id == 0 {
			continue
		}
		fp.Tracks = append(fp.Tracks, &fmp4.PartTrack{ID: id, BaseTime: st.BaseTime, Samples: st.Samples})
		for _, smp := range st.Samples {
			size += len(smp.Payload) + 16
		}
	}
	var buf seekablebuffer.Buffer
	buf.Grow(size)
	_, _ = buf.Write(p.boxes)
	if err := fp.Marshal(&buf); err != nil {
		return fmt.Errorf("part: %w", err)
	}
	vpart := &part{n: p.n, index: p.index, body: buf.Bytes(), dur: p.dur, independent: len(smps) > 0 && smps[0].key, at: time.Now()}
	v.open.parts = append(v.open.parts, vpart)
	v.open.dur += vpart.dur
	v.open.frames = vp.frames
	v.parts[p.n] = vpart
	v.stats.parts.Add(1)
	return nil
}

// openSegment starts the variant's segment mirroring source segment src,
// after gap segments for any the variant missed since its last. Called
// with s.mu held.
func (v *variant) openSegment(s *Stream, src *segment) {
	if v.open != nil {
		v.closeSegment(s, true)
	}
	v.listPendingGap(s)
	v.pendingGap = nil
	if n := len(v.segs); n > 0 && v.segs[n-1].msn+1 < src.msn {
		if !v.fillGaps(s, v.segs[n-1].msn+1, src.msn) {
			v.segs = nil
		}
	}
	v.open = &segment{msn: src.msn, start: src.start, pdt: src.pdt, init: v.pub.init, disc: src.disc, discNum: src.discNum}
	v.openSrc = src
}

// fillGaps lists the source's segments [from, to) as gaps of the variant.
// It reports false when the source no longer has them all.
func (v *variant) fillGaps(s *Stream, from, to int64) bool {
	var add []*segment
	for _, seg := range s.segs {
		if seg.msn >= from && seg.msn < to {
			add = append(add, v.gapSegment(seg, 0))
		}
	}
	if int64(len(add)) != to-from {
		return false
	}
	v.segs = append(v.segs, add...)
	v.trim(s)
	return true
}

// gapSegment is the variant's EXT-X-GAP copy of source segment src, whose
// first have parts it published (kept in open, when given).
func (v *variant) gapSegment(src *segment, have int) *segment {
	g := &segment{msn: src.msn, start: src.start, pdt: src.pdt, dur: src.dur, disc: src.disc, discNum: src.discNum,
		init: v.lastInit, complete: true, gap: true, at: time.Now()}
	for _, p := range src.parts[have:] {
		g.parts = append(g.parts, &part{n: p.n, index: p.index, dur: p.dur, gap: true})
	}
	return g
}

// complete closes the open segment once it has every part of a complete
// source segment. Called with s.mu held.
func (v *variant) complete(s *Stream) {
	if v.open != nil && v.openSrc.complete && len(v.open.parts) >= len(v.openSrc.parts) {
		v.closeSegment(s, false)
	}
}

// closeSegment completes the open segment, as a gap when the variant
// could not fill it. Called with s.mu held.
func (v *variant) closeSegment(s *Stream, gap bool) {
	seg, src := v.open, v.openSrc
	v.open, v.openSrc = nil, nil
	if seg == nil {
		return
	}
	if gap {
		g := v.gapSegment(src, min(len(seg.parts), len(src.parts)))
		g.parts = append(seg.parts[:min(len(seg.parts), len(src.parts)):min(len(seg.parts), len(src.parts))], g.parts...)
		g.init = seg.init
		if !src.complete {
			// Its duration is not known yet: list it once the source's is.
			v.pendingGap = g
			return
		}
		v.segs = append(v.segs, g)
		v.trim(s)
		return
	}
	n := 0
	for _, p := range seg.parts {
		n += len(p.body)
	}
	seg.body = make([]byte, 0, n)
	for _, p := range seg.parts {
		off := len(seg.body)
		seg.body = append(seg.body, p.body...)
		p.body = seg.body[off:len(seg.body):len(seg.body)]
	}
	seg.dur = src.dur
	seg.size = n
	seg.complete = true
	seg.at = time.Now()
	v.stats.segments.Add(1)
	v.segs = append(v.segs, seg)
	s.segmentDone(seg, v.name)
	v.trim(s)
}

// settle lists as gaps the source segments that a variant without a
// joined publisher cannot fill, so that its playlist keeps pace with the
// source. Called with s.mu held.
func (v *variant) settle(s *Stream) {
	if v.open != nil {
		v.closeSegment(s, true)
	}
	v.listPendingGap(s)
}

// listPendingGap lists the gap segment waiting for its source segment's
// end.
func (v *variant) listPendingGap(s *Stream) {
	if g := v.pendingGap; g != nil {
		for _, seg := range s.segs {
			if seg.msn == g.msn {
				g.dur = seg.dur
				have := 0
				for have < len(g.parts) && !g.parts[have].gap {
					have++
				}
				rest := v.gapSegment(seg, min(have, len(seg.parts)))
				g.parts = append(g.parts[:have:have], rest.parts...)
				v.segs = append(v.segs, g)
				v.pendingGap = nil
				v.trim(s)
				return
			}
		}
	}
}

// segmentDone tells the variants that source segment seg completed: a
// variant that filled it closes its own, one with no publisher following
// lists it as a gap. Called with s.mu held.
func (s *Stream) variantsSegmentDone(seg *segment) {
	for _, v := range s.variants {
		v.listPendingGap(s)
		if v.open != nil && v.openSrc == seg {
			v.complete(s)
		}
		if v.pub != nil && v.pub.joined || len(v.segs) == 0 && v.open == nil {
			continue
		}
		if v.open != nil {
			v.closeSegment(s, true)
			v.listPendingGap(s)
		}
		if n := len(v.segs); n > 0 && v.segs[n-1].msn < seg.msn {
			if !v.fillGaps(s, v.segs[n-1].msn+1, seg.msn+1) {
				v.segs = nil
			}
		}
	}
	// A variant whose window holds nothing it published leaves the stream.
	kept := s.variants[:0]
	for _, v := range s.variants {
		if v.pub != nil || v.open != nil || slices.ContainsFunc(v.segs, func(seg *segment) bool { return !seg.gap }) {
			kept = append(kept, v)
			continue
		}
		v.drop(s)
	}
	clear(s.variants[len(kept):])
	s.variants = kept
}

// drop forgets a variant's files.
func (v *variant) drop(s *Stream) {
	for name, f := range s.inits {
		if f.variant == v {
			delete(s.inits, name)
		}
	}
	s.stats.forgetVariant(v.name, s.m.cfg.MaxVariants)
	s.log.Info("variant removed", "variant", v.name)
}

// trim drops the variant's segments and part bytes as Stream.trim does the
// source's.
func (v *variant) trim(s *Stream) {
	keep := s.m.cfg.WindowSegments + s.m.cfg.RetainSegments
	for len(v.segs) > keep {
		old := v.segs[0]
		v.segs = v.segs[1:]
		for _, p := range old.parts {
			delete(v.parts, p.n)
		}
		if old.init != nil && old.init != v.segs[0].init && (v.pub == nil || v.pub.init != old.init) {
			delete(s.inits, old.init.name)
		}
	}
	limit := s.lastEnd - 6*s.tdDuration()
	for _, seg := range v.segs {
		if seg.start+seg.dur >= limit {
			break
		}
		for _, p := range seg.parts {
			delete(v.parts, p.n)
		}
	}
}

package packager

import (
	"context"
	"fmt"
	"time"
)

const (
	contentTypePlaylist = "application/vnd.apple.mpegurl"
	contentTypeMP4      = "video/mp4"
)

// waitFor blocks until cond holds for at most 3 target durations, the limit
// of RFC 8216bis 6.2.5.2, after which the request gets a 503. Called with
// s.mu read-locked.
func (s *Stream) waitFor(ctx context.Context, client string, cond func() bool) error {
	if cond() {
		return nil
	}
	release, err := s.m.block(s.stats, client)
	if err != nil {
		return err
	}
	defer release()
	timer := time.NewTimer(3 * s.tdDuration())
	defer timer.Stop()
	return s.wait(ctx, timer.C, cond)
}

// fetchMedia serves the media playlist of the source (variant "") or of a
// variant.
func (s *Stream) fetchMedia(ctx context.Context, req Request, variant string) (*Response, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.renditionOf(variant)
	if r == nil {
		return nil, ErrNotFound
	}
	kind := KindPlaylist
	if req.MSN >= 0 {
		kind = KindBlockingPlaylist
	}
	// RFC 8216bis 6.2.5.2: a server MUST ignore _HLS_msn and _HLS_part if
	// the playlist contains EXT-X-ENDLIST.
	if req.MSN >= 0 && !s.ended {
		if err := s.checkAhead(r, req.MSN, req.Part); err != nil {
			return nil, err
		}
		if err := s.waitFor(ctx, req.Client, func() bool { return s.ended || s.has(r, req.MSN, req.Part) }); err != nil {
			return nil, err
		}
	} else if err := s.waitFor(ctx, req.Client, func() bool { return s.ended || s.td > 0 && s.started(r) }); err != nil {
		// A playlist is first served once the first segment fixed the
		// target duration (and a variant's once it has a part).
		return nil, err
	}
	if s.td == 0 || !s.started(r) {
		return nil, ErrNotFound
	}
	pl, build := s.mediaPlaylist(r, req.Skip)
	return &Response{
		Kind: kind, ContentType: contentTypePlaylist, playlist: pl, build: build,
		TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: time.Now(),
	}, nil
}

// started reports whether rendition r has a part or segment to list.
func (s *Stream) started(r *rendition) bool {
	_, _, ok := s.lastPartOf(r)
	return ok || r == &s.rendition
}

// lastPartOf returns the position of r's newest part: its segment's msn
// and its index there. ok is false before the first part.
func (s *Stream) lastPartOf(r *rendition) (msn int64, idx int, ok bool) {
	if r.open != nil && len(r.open.parts) > 0 {
		return r.open.msn, len(r.open.parts) - 1, true
	}
	if n := len(r.segs); n > 0 {
		return r.segs[n-1].msn, len(r.segs[n-1].parts) - 1, true
	}
	return 0, 0, false
}

// has reports whether the playlist already holds segment msn (part < 0) or
// its part with index part. A part index past the end of a complete segment
// means part 0 of the next segment (RFC 8216bis 6.2.5.2).
func (s *Stream) has(r *rendition, msn, part int64) bool {
	if s.td == 0 {
		return false
	}
	lastMSN, lastIdx, ok := s.lastPartOf(r)
	if !ok {
		return false
	}
	if part < 0 {
		n := len(r.segs)
		return n > 0 && r.segs[n-1].msn >= msn
	}
	if msn < lastMSN {
		seg := r.segment(msn)
		if seg == nil || part < int64(len(seg.parts)) {
			return true
		}
		// Past the end of a complete segment: part 0 of the next one.
		return s.has(r, msn+1, 0)
	}
	if msn == lastMSN {
		// A later part of this segment or, if the segment is complete, part
		// 0 of the next one: either way it does not exist yet.
		return part <= int64(lastIdx)
	}
	return false
}

func (r *rendition) segment(msn int64) *segment {
	if r.open != nil && r.open.msn == msn {
		return r.open
	}
	for _, seg := range r.segs {
		if seg.msn == msn {
			return seg
		}
	}
	return nil
}

// advancePartLimit is the Advance Part Limit of RFC 8216bis 6.2.5.2.
const advancePartLimit = 3

// checkAhead refuses requests too far in the future: RFC 8216bis 6.2.5.2,
// _HLS_msn more than two past the last segment, or _HLS_part more than the
// Advance Part Limit past the last part, is a 400.
func (s *Stream) checkAhead(r *rendition, msn, part int64) error {
	last := int64(-1)
	if n := len(r.segs); n > 0 {
		last = r.segs[n-1].msn
	}
	if s.td == 0 {
		// Before the first segment a client can only guess; allow the start.
		if msn > 2 && msn > s.nextMSN+2 {
			return fmt.Errorf("%w: _HLS_msn=%d ahead of the stream", ErrBadRequest, msn)
		}
		return nil
	}
	if msn > last+2 {
		return fmt.Errorf("%w: _HLS_msn=%d more than 2 past the last segment %d", ErrBadRequest, msn, last)
	}
	if part < 0 {
		return nil
	}
	lastMSN, lastIdx, ok := s.lastPartOf(r)
	if !ok {
		return nil
	}
	perSeg := int64(max(1, (s.tdDuration()+s.partTarget()-1)/s.partTarget()))
	var ahead int64
	switch {
	case msn < lastMSN:
		return nil
	case msn == lastMSN:
		ahead = part - int64(lastIdx)
		if r.open == nil || r.open.msn != lastMSN {
			// That segment is complete: the part is in the next one.
			ahead = min(ahead, 1)
		}
	default:
		// Parts of a segment that has not started: count the parts left
		// in the current segment as PART-TARGET predicts them.
		left := max(perSeg-1-int64(lastIdx), 0)
		if r.open == nil || r.open.msn != lastMSN {
			left = 0
		}
		ahead = left + (msn-lastMSN-1)*perSeg + part + 1
	}
	if ahead > advancePartLimit {
		return fmt.Errorf("%w: _HLS_part=%d of _HLS_msn=%d is %d parts ahead", ErrBadRequest, part, msn, ahead)
	}
	return nil
}

func (s *Stream) fetchMultivariant(ctx context.Context, client string) (*Response, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.waitFor(ctx, client, func() bool { return s.ended || s.td > 0 }); err != nil {
		return nil, err
	}
	if s.td == 0 {
		return nil, ErrNotFound
	}
	mv, build := s.cached(&s.mvCache, func() *draft { return &draft{head: s.renderMultivariant()} })
	return &Response{
		Kind: KindMultivariant, ContentType: contentTypePlaylist, playlist: mv, build: build,
		TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: time.Now(),
	}, nil
}

func (s *Stream) fetchInit(name string) (*Response, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := s.inits[name]
	if f == nil {
		return nil, ErrNotFound
	}
	return &Response{Kind: KindInit, ContentType: contentTypeMP4, Body: f.body, TargetDuration: s.tdDuration(), ModTime: f.at}, nil
}

func (s *Stream) fetchSegment(msn int64, variant string) (*Response, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.renditionOf(variant)
	if r == nil {
		return nil, ErrNotFound
	}
	for _, seg := range r.segs {
		if seg.msn == msn && !seg.gap {
			return &Response{Kind: KindSegment, ContentType: contentTypeMP4, Body: seg.body, TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: seg.at}, nil
		}
	}
	return nil, ErrNotFound
}

// fetchPart serves a part. A request for the part the playlist hints at
// (EXT-X-PRELOAD-HINT) blocks until the part is complete and is then sent
// whole (RFC 8216bis 6.2.6).
func (s *Stream) fetchPart(ctx context.Context, client string, n int64, variant string) (*Response, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.renditionOf(variant)
	if r == nil {
		return nil, ErrNotFound
	}
	if hint, ok := s.preloadHint(r); ok && n == hint && !s.ended {
		if err := s.waitFor(ctx, client, func() bool {
			next, ok := s.preloadHint(r)
			return r.parts[n] != nil || s.ended || !ok || next > n
		}); err != nil {
			return nil, err
		}
	}
	p := r.parts[n]
	if p == nil || p.gap {
		return nil, ErrNotFound
	}
	return &Response{Kind: KindPart, ContentType: contentTypeMP4, Body: p.body, TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: p.at}, nil
}

package packager

import (
	"context"
	"time"

	"github.com/shopcast/shopcast/internal/hlsname"
)

const contentTypeTS = "video/mp2t"

// fetchTSSegment serves segN.ts.
func (s *Stream) fetchTSSegment(msn int64) (*Response, error) {
	// A read, like every viewer's: s.ts.segs changes under s.mu held for
	// writing (see tsRendition), so RLock is enough.
	s.mu.RLock()
	defer s.mu.RUnlock()
	ts := s.ts.segment(msn)
	if ts == nil {
		return nil, ErrNotFound
	}
	return &Response{Kind: KindSegment, ContentType: contentTypeTS, Body: ts.body, TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: ts.at}, nil
}

// fetchTSPlaylist serves the TS rendition's playlists, stream_ts.m3u8 and
// index_ts.m3u8 (kind). They are not low-latency: they take no delivery
// directives and never block for long, but the first request waits (like
// stream.m3u8's) for the first segment.
func (s *Stream) fetchTSPlaylist(ctx context.Context, client string, kind hlsname.Kind) (*Response, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.waitFor(ctx, client, func() bool { return s.ended || len(s.ts.segs) > 0 }); err != nil {
		return nil, err
	}
	if len(s.ts.segs) == 0 {
		return nil, ErrNotFound
	}
	c, rkind, take := &s.ts.cache, KindPlaylist, s.draftTSMedia
	if kind == hlsname.KindTSMultivariant {
		c, rkind, take = &s.ts.mvCache, KindMultivariant, func() *draft { return &draft{head: s.renderTSMultivariant()} }
	}
	r, build := s.cached(c, take)
	return &Response{
		Kind: rkind, ContentType: contentTypePlaylist, playlist: r, build: build,
		TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: time.Now(),
	}, nil
}

package packager

import (
	"context"
	"strconv"
	"strings"
	"time"
)

const contentTypeTS = "video/mp2t"

// isTSFile reports whether a file name belongs to the TS rendition:
// stream_ts.m3u8, index_ts.m3u8 or segN.ts.
func isTSFile(f string) bool {
	return f == tsMediaPlaylist || f == tsMultivariantPlaylist || strings.HasSuffix(f, ".ts")
}

// fetchTS serves the TS rendition's files. Its playlists are not
// low-latency: they take no delivery directives and never block for long,
// but the first request waits (like stream.m3u8's) for the first segment.
func (s *Stream) fetchTS(ctx context.Context, f string) (*Response, error) {
	if strings.HasPrefix(f, "seg") && strings.HasSuffix(f, ".ts") {
		n, err := strconv.ParseInt(f[3:len(f)-3], 10, 64)
		if err != nil || n < 0 {
			return nil, ErrNotFound
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		ts := s.ts.segment(n)
		if ts == nil {
			return nil, ErrNotFound
		}
		return &Response{Kind: KindSegment, ContentType: contentTypeTS, Body: ts.body, TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: ts.at}, nil
	}
	if f != tsMediaPlaylist && f != tsMultivariantPlaylist {
		return nil, ErrNotFound
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.waitFor(ctx, func() bool { return s.ended || len(s.ts.segs) > 0 }); err != nil {
		return nil, err
	}
	if len(s.ts.segs) == 0 {
		return nil, ErrNotFound
	}
	c, kind, take := &s.ts.cache, KindPlaylist, s.draftTSMedia
	if f == tsMultivariantPlaylist {
		c, kind, take = &s.ts.mvCache, KindMultivariant, func() *draft { return &draft{head: s.renderTSMultivariant()} }
	}
	r, build := s.cached(c, take)
	return &Response{
		Kind: kind, ContentType: contentTypePlaylist, playlist: r, build: build,
		TargetDuration: s.tdDuration(), Ended: s.ended, ModTime: time.Now(),
	}, nil
}

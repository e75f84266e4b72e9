package origin

import (
	"time"

	"github.com/shopcast/shopcast/packager"
)

// Cache-Control values of answers that are not stream files.
const (
	// cacheNotFound lets an edge absorb a burst of requests for a stream
	// that does not exist (yet) without hiding its start for long.
	cacheNotFound = "public, max-age=1"
	// cacheNoStore is for 400, 405, 5xx: they say nothing about the file.
	cacheNoStore = "no-store"
)

// maxAge returns the max-age of a stream file's Cache-Control ("public,
// max-age=N", see headerCache.maxAge), after RFC 8216bis appendix B and the
// usual LL-HLS CDN practice, in whole seconds, at least 1:
//
//   - Blocking playlist responses, parts and segments do not change once
//     published: 6 target durations, longer than a live viewer needs them.
//   - A non-blocking playlist changes with every part: half a target
//     duration, so an edge serves each version to many viewers but a new
//     viewer's first playlist is never far behind.
//   - An init segment is cached like a segment: 6 target durations. It
//     could be longer only if its name changed whenever it did.
//   - Once ended (EXT-X-ENDLIST) a playlist no longer changes: 6 target
//     durations. Not longer, so that a new stream under the same name is
//     not hidden behind the ended one.
func maxAge(resp *packager.Response) int64 {
	td := resp.TargetDuration
	if td <= 0 {
		td = time.Second // a packager bug; stay short
	}
	long := 6 * td
	var age time.Duration
	switch resp.Kind {
	case packager.KindPlaylist, packager.KindMultivariant:
		age = td / 2
		if resp.Ended {
			age = long
		}
	default: // blocking playlists, init, parts, segments
		age = long
	}
	return seconds(age)
}

// seconds rounds d to whole seconds, at least 1.
func seconds(d time.Duration) int64 {
	return max(1, int64(d.Round(time.Second)/time.Second))
}

// isPlaylist reports whether k is a playlist kind.
func isPlaylist(k packager.Kind) bool {
	switch k {
	case packager.KindMultivariant, packager.KindPlaylist, packager.KindBlockingPlaylist:
		return true
	}
	return false
}

package e2etest

import (
	"fmt"
	"strings"
)

// LastPart returns the newest part of a media playlist: its segment's
// media sequence number, its index there, and whether that segment is
// complete (listed with EXTINF).
func LastPart(playlist string) (msn, part int64, complete, ok bool) {
	seq := int64(-1)
	var segs, parts int64
	for _, line := range strings.Split(playlist, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			_, _ = fmt.Sscan(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), &seq)
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			parts++
		case strings.HasPrefix(line, "#EXTINF:"):
			segs++
			part, complete = parts-1, parts > 0
			parts = 0
		}
	}
	if seq < 0 {
		return 0, 0, false, false
	}
	if parts > 0 {
		return seq + segs, parts - 1, false, true
	}
	if !complete {
		return 0, 0, false, false
	}
	return seq + segs - 1, part, true, true
}

package recorder

import (
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// Files of a recording that index its cues.
const (
	// chaptersFile is Apple's JSON chapter format, referenced from the
	// multivariant playlist by EXT-X-SESSION-DATA with DATA-ID
	// "com.apple.hls.chapters" (Safari and AVPlayer show it natively).
	chaptersFile = "chapters.json"
	// cuesFile is the plain list of cues for web players.
	cuesFile = "cues.json"
)

// chapter is one entry of Apple's JSON chapter format: "start-time" is
// required, "duration" optional (else up to the next chapter), "titles"
// one per BCP 47 language ("und" when unknown).
type chapter struct {
	Chapter   int            `json:"chapter"`
	StartTime float64        `json:"start-time"`
	Duration  float64        `json:"duration,omitempty"`
	Titles    []chapterTitle `json:"titles"`
}

type chapterTitle struct {
	Language string `json:"language"`
	Title    string `json:"title"`
}

// CueEntry is one cue of a recording, as cues.json lists it.
type CueEntry struct {
	ID    string `json:"id"`
	Title string `json:"title,omitempty"`
	// OffsetMs is where the cue starts in the recording's playback
	// timeline (the sum of EXTINF before it), for seeking.
	OffsetMs int64 `json:"offset_ms"`
	// MediaTimeMs is the cue's media time on the live timeline (the
	// emsg's), ProgramDateTime its START-DATE.
	MediaTimeMs     int64  `json:"media_time_ms"`
	ProgramDateTime string `json:"program_date_time"`
	// DurationMs is its length once known (0: open until the end).
	DurationMs int64 `json:"duration_ms,omitempty"`
}

// offset maps a program date-time to the playback timeline: through the
// segment holding it, so that a reconnect's gap in wall time (not in the
// media) does not shift what comes after.
func (rec *recording) offset(wall time.Time) time.Duration {
	var at, best time.Duration
	found := false
	for _, s := range rec.segs {
		if !s.pdt.After(wall) {
			best, found = at+wall.Sub(s.pdt), true
		}
		at += s.dur
	}
	if !found {
		return 0
	}
	return min(best, at)
}

// cueTitle is the cue's title attribute (X-...-TITLE), else its id.
func cueTitle(id string, attrs []packager.DateRangeAttr) string {
	for _, a := range attrs {
		if strings.HasSuffix(a.Name, "-TITLE") && a.Kind == packager.AttrString && a.String != "" {
			return a.String
		}
	}
	return id
}

// cueIndex lists the recording's cues that carry a DATERANGE, in order.
func (rec *recording) cueIndex() []CueEntry {
	out := []CueEntry{}
	for i := range rec.events {
		ei := &rec.events[i]
		if ei.Event.DateRange == nil {
			continue
		}
		e := CueEntry{
			ID:              ei.Event.ID,
			Title:           cueTitle(ei.Event.ID, ei.Event.DateRange.Attrs),
			OffsetMs:        rec.offset(ei.Start.Wall).Milliseconds(),
			MediaTimeMs:     ei.Start.Media.Milliseconds(),
			ProgramDateTime: ei.Start.Wall.UTC().Format(pdtLayout),
		}
		if !ei.End.Wall.IsZero() {
			e.DurationMs = ei.End.Wall.Sub(ei.Start.Wall).Milliseconds()
		} else if ei.Event.Duration > 0 {
			e.DurationMs = ei.Event.Duration.Milliseconds()
		}
		out = append(out, e)
	}
	return out
}

// chapters renders chapters.json from the cue index, one chapter per cue.
func chapters(cues []CueEntry) ([]byte, error) {
	out := []chapter{}
	for i, c := range cues {
		out = append(out, chapter{
			Chapter:   i + 1,
			StartTime: math.Round(float64(c.OffsetMs)) / 1000,
			Duration:  float64(c.DurationMs) / 1000,
			Titles:    []chapterTitle{{Language: "und", Title: c.Title}},
		})
	}
	return json.MarshalIndent(out, "", "  ")
}

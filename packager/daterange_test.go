package packager

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// TestDateRangeTag reads the tags with github.com/Eyevinn/hls-m3u8, a
// parser we did not write.
func TestDateRangeTag(t *testing.T) {
	start := time.Date(2025, 6, 1, 18, 0, 12, 0, time.FixedZone("CEST", 2*3600))
	attrs := []DateRangeAttr{
		QuotedAttr("X-TITLE", `Mug, 350 ml, A=B`),
		HexAttr("X-CUE", []byte(`{"a":1}`)),
		NumberAttr("X-RANK", 2.5),
		QuotedAttr("X-BAD", "a\"b\r\nc"),
	}
	cases := []struct {
		name     string
		ev       Event
		end      time.Time
		class    string
		duration float64 // -1: absent
	}{
		{"open", Event{ID: "a", DateRange: &DateRange{Class: "com.x", Attrs: attrs}}, time.Time{}, "com.x", -1},
		{"with duration", Event{ID: "a", Duration: 30 * time.Second, DateRange: &DateRange{Attrs: attrs}}, time.Time{}, "", 30},
		{"ended", Event{ID: "a", Duration: 30 * time.Second, DateRange: &DateRange{Attrs: attrs}}, start.Add(12345 * time.Millisecond), "", 12.345},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line, err := tc.ev.DateRangeTag(start, tc.end)
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(line, "\r\n") || !strings.Contains(line, `START-DATE="2025-06-01T16:00:12.000Z"`) {
				t.Fatalf("line %q", line)
			}
			pl := "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n" +
				"#EXT-X-PROGRAM-DATE-TIME:2025-06-01T16:00:00.000Z\n" + line + "\n#EXTINF:2.000,\nseg0.m4s\n"
			p, _, err := m3u8.DecodeFrom(strings.NewReader(pl), true)
			if err != nil {
				t.Fatal(err)
			}
			drs := p.(*m3u8.MediaPlaylist).DateRanges
			if len(drs) != 1 {
				t.Fatalf("%d date ranges", len(drs))
			}
			dr := drs[0]
			if dr.ID != "a" || dr.Class != tc.class || !dr.StartDate.Equal(start) {
				t.Errorf("ID %q CLASS %q START-DATE %v", dr.ID, dr.Class, dr.StartDate)
			}
			switch {
			case tc.duration < 0 && dr.Duration != nil:
				t.Errorf("DURATION %v, want none", *dr.Duration)
			case tc.duration >= 0 && (dr.Duration == nil || *dr.Duration != tc.duration):
				t.Errorf("DURATION %v, want %v", dr.Duration, tc.duration)
			}
			if tc.end.IsZero() != (dr.EndDate == nil) || (dr.EndDate != nil && !dr.EndDate.Equal(tc.end)) {
				t.Errorf("END-DATE %v, want %v", dr.EndDate, tc.end)
			}
			var got []string
			for _, a := range dr.XAttrs {
				got = append(got, a.Key+"="+a.Val)
			}
			want := `X-TITLE="Mug, 350 ml, A=B" X-CUE=0x7B2261223A317D X-RANK=2.5 X-BAD="a'b  c"`
			if strings.Join(got, " ") != want {
				t.Errorf("attributes %s\nwant %s", strings.Join(got, " "), want)
			}
		})
	}
}

// TestDateRangeRefused: what would break the tag's grammar is refused when
// the event is added, not rewritten.
func TestDateRangeRefused(t *testing.T) {
	for name, a := range map[string]DateRangeAttr{
		"no X- prefix":     QuotedAttr("TITLE", "a"),
		"lower case":       QuotedAttr("X-title", "a"),
		"comma in name":    QuotedAttr("X-A,B", "a"),
		"negative number":  NumberAttr("X-N", -1),
		"not a number":     NumberAttr("X-N", math.NaN()),
		"infinite":         NumberAttr("X-N", math.Inf(1)),
		"kind out of list": {Name: "X-K", Kind: 9},
	} {
		t.Run(name, func(t *testing.T) {
			_, s := liveStream(t)
			if _, err := s.AddEvent(Event{ID: "a", DateRange: &DateRange{Attrs: []DateRangeAttr{a}}}); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("AddEvent: %v", err)
			}
		})
	}
}

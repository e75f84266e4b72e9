package cues

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// parseDateRange reads line inside a minimal media playlist with
// github.com/Eyevinn/hls-m3u8, a parser we did not write.
func parseDateRange(t *testing.T, line string) *m3u8.DateRange {
	t.Helper()
	pl := "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n" +
		"#EXT-X-PROGRAM-DATE-TIME:2025-06-01T18:00:00.000Z\n" + line + "\n" +
		"#EXTINF:2.000,\nseg0.m4s\n#EXTINF:2.000,\nseg1.m4s\n"
	p, typ, err := m3u8.DecodeFrom(strings.NewReader(pl), true)
	if err != nil {
		t.Fatal(err)
	}
	if typ != m3u8.MEDIA {
		t.Fatalf("playlist type %v", typ)
	}
	mp := p.(*m3u8.MediaPlaylist)
	if len(mp.DateRanges) != 1 {
		t.Fatalf("%d dateranges", len(mp.DateRanges))
	}
	return mp.DateRanges[0]
}

// dateRangeLine is the EXT-X-DATERANGE line the packager writes for the
// event of c.
func dateRangeLine(t testing.TB, c *Cue, start, end time.Time) string {
	t.Helper()
	ev, err := NewEvent(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	line, err := ev.DateRangeTag(start, end)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func xattrs(dr *m3u8.DateRange) map[string]string {
	m := map[string]string{}
	for _, a := range dr.XAttrs {
		m[a.Key] = a.Val
	}
	return m
}

func TestDateRange(t *testing.T) {
	c := exampleCue(t) // duration_ms 30000
	open := *c
	open.DurationMs = 0
	start := time.Date(2025, 6, 1, 18, 0, 12, 0, time.UTC)
	early := start.Add(12345 * time.Millisecond)

	cases := []struct {
		name     string
		cue      *Cue
		end      time.Time
		duration float64 // -1: absent
		endDate  time.Time
	}{
		{"with duration", c, time.Time{}, 30, time.Time{}},
		{"open-ended", &open, time.Time{}, -1, time.Time{}},
		{"open-ended, ended", &open, early, 12.345, early},
		{"deleted early", c, early, 12.345, early},
		{"ran its duration", c, start.Add(30 * time.Second), 30, start.Add(30 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := dateRangeLine(t, tc.cue, start.In(time.FixedZone("CEST", 2*3600)), tc.end)
			if strings.ContainsAny(line, "\r\n") {
				t.Fatal("line break in the tag")
			}
			dr := parseDateRange(t, line)
			if dr.ID != "sneaker-42" || dr.Class != "com.shopcast.product" {
				t.Errorf("ID %q CLASS %q", dr.ID, dr.Class)
			}
			if !dr.StartDate.Equal(start) {
				t.Errorf("START-DATE %v", dr.StartDate)
			}
			if !strings.Contains(line, `START-DATE="2025-06-01T18:00:12.000Z"`) {
				t.Errorf("START-DATE not in UTC with ms: %s", line)
			}
			switch {
			case tc.duration < 0 && dr.Duration != nil:
				t.Errorf("DURATION %v, want none", *dr.Duration)
			case tc.duration >= 0 && (dr.Duration == nil || *dr.Duration != tc.duration):
				t.Errorf("DURATION %v, want %v", dr.Duration, tc.duration)
			}
			switch {
			case tc.endDate.IsZero() && dr.EndDate != nil:
				t.Errorf("END-DATE %v, want none", dr.EndDate)
			case !tc.endDate.IsZero() && (dr.EndDate == nil || !dr.EndDate.Equal(tc.endDate)):
				t.Errorf("END-DATE %v, want %v", dr.EndDate, tc.endDate)
			}
			x := xattrs(dr)
			want := map[string]string{
				"X-COM-SHOPCAST-SKU":      `"SNK-42-WHT"`,
				"X-COM-SHOPCAST-TITLE":    `"Court Classic Sneaker"`,
				"X-COM-SHOPCAST-PRICE":    `"89.90"`,
				"X-COM-SHOPCAST-CURRENCY": `"EUR"`,
				"X-COM-SHOPCAST-IMAGE":    `"https://cdn.example.com/p/snk-42-wht.jpg"`,
				"X-COM-SHOPCAST-URL":      `"https://shop.example.com/p/snk-42-wht"`,
			}
			for k, v := range want {
				if x[k] != v {
					t.Errorf("%s = %s, want %s", k, x[k], v)
				}
			}
			cue := x["X-COM-SHOPCAST-CUE"]
			if !strings.HasPrefix(cue, "0x") || strings.ToUpper(cue[2:]) != cue[2:] {
				t.Fatalf("X-COM-SHOPCAST-CUE %q is not an upper-case hexadecimal-sequence", cue)
			}
			js, err := hex.DecodeString(cue[2:])
			if err != nil {
				t.Fatal(err)
			}
			wire, _ := tc.cue.Wire()
			if string(js) != string(wire) {
				t.Fatalf("X-COM-SHOPCAST-CUE holds %s", js)
			}
			// The JSON decodes as a cue again (with an `at` added back).
			if _, err := DecodeCue(js); err != nil {
				t.Fatalf("wire JSON is not a valid cue: %v", err)
			}
		})
	}
}

// TestDateRangeQuoted: titles with commas and '=' stay inside their quoted
// string; characters a quoted-string cannot hold never reach the line.
func TestDateRangeQuoted(t *testing.T) {
	c := exampleCue(t)
	p := *c.Product
	p.Title = `Mug, 350 ml, A=B`
	c.Product = &p
	dr := parseDateRange(t, dateRangeLine(t, c, time.Unix(0, 0), time.Time{}))
	if got := xattrs(dr)["X-COM-SHOPCAST-TITLE"]; got != `"Mug, 350 ml, A=B"` {
		t.Fatalf("title %s", got)
	}
	p.Title = "a\"b\r\nc"
	if line := dateRangeLine(t, c, time.Unix(0, 0), time.Time{}); strings.Count(line, `"`)%2 != 0 || strings.ContainsAny(line, "\r\n") {
		t.Fatalf("line %q", line)
	}
}

func TestDateRangeGolden(t *testing.T) {
	start := time.Date(2025, 6, 1, 18, 0, 12, 0, time.UTC)
	golden(t, "example.daterange", []byte(dateRangeLine(t, exampleCue(t), start, time.Time{})+"\n"))
}

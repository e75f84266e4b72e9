package cues

import (
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// DateRangeClass is the CLASS of every shopcast EXT-X-DATERANGE.
const DateRangeClass = "com.shopcast.product"

// dateRangeTime is ISO 8601 with milliseconds, as RFC 8216bis 4.4.5.1 asks
// of START-DATE and END-DATE ("an ISO-8601 date"); always UTC.
const dateRangeTime = "2006-01-02T15:04:05.000Z07:00"

// DateRangeFunc returns the function the packager calls for the cue's
// EXT-X-DATERANGE line (packager.Event.DateRange). The product attributes and
// the hex of the cue JSON are built once here; each call only formats the
// dates:
//
//	#EXT-X-DATERANGE:ID="<id>",CLASS="com.shopcast.product",
//	START-DATE="<start>"[,END-DATE="<end>"][,DURATION=<s>],
//	X-COM-SHOPCAST-SKU="...",X-COM-SHOPCAST-TITLE="...",
//	X-COM-SHOPCAST-PRICE="...",X-COM-SHOPCAST-CURRENCY="...",
//	X-COM-SHOPCAST-IMAGE="...",X-COM-SHOPCAST-URL="...",
//	X-COM-SHOPCAST-CUE=0x<hex of the Wire JSON>
//
// DURATION is end-start once the end is known (RFC 8216bis 4.4.5.1: "If both
// DURATION and END-DATE are present, the value of END-DATE MUST equal
// START-DATE + DURATION"), else the cue's duration_ms, else absent (an
// open-ended cue, which gets END-DATE when it is deleted).
func DateRangeFunc(c *Cue) (func(start, end time.Time) string, error) {
	wire, err := c.Wire()
	if err != nil {
		return nil, err
	}
	head := `#EXT-X-DATERANGE:ID="` + quoted(c.ID) + `",CLASS="` + DateRangeClass + `",START-DATE="`
	var tail strings.Builder
	if p := c.Product; p != nil {
		for _, a := range [][2]string{
			{"SKU", p.SKU}, {"TITLE", p.Title}, {"PRICE", p.Price.Amount},
			{"CURRENCY", p.Price.Currency}, {"IMAGE", p.ImageURL}, {"URL", p.URL},
		} {
			tail.WriteString(",X-COM-SHOPCAST-")
			tail.WriteString(a[0])
			tail.WriteString(`="`)
			tail.WriteString(quoted(a[1]))
			tail.WriteByte('"')
		}
	}
	// RFC 8216bis 4.2: a hexadecimal-sequence is "0x" or "0X" followed by
	// characters from [0..9] and [A..F].
	tail.WriteString(",X-COM-SHOPCAST-CUE=0x")
	tail.WriteString(strings.ToUpper(hex.EncodeToString(wire)))
	rest := tail.String()
	dur := time.Duration(c.DurationMs) * time.Millisecond

	return func(start, end time.Time) string {
		var b strings.Builder
		b.Grow(len(head) + len(rest) + 80)
		b.WriteString(head)
		b.WriteString(start.UTC().Format(dateRangeTime))
		b.WriteByte('"')
		switch {
		case !end.IsZero():
			b.WriteString(`,END-DATE="`)
			b.WriteString(end.UTC().Format(dateRangeTime))
			b.WriteString(`",DURATION=`)
			b.WriteString(seconds(end.Sub(start)))
		case dur > 0:
			b.WriteString(",DURATION=")
			b.WriteString(seconds(dur))
		}
		b.WriteString(rest)
		return b.String()
	}, nil
}

// seconds formats a decimal-floating-point number of seconds with ms
// precision; never negative (RFC 8216bis 4.4.5.1: DURATION "MUST NOT be
// negative").
func seconds(d time.Duration) string {
	d = max(d, 0).Round(time.Millisecond)
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// quoted replaces what a quoted-string cannot hold (RFC 8216bis 4.2: no
// double quote, CR or LF). Validation refuses such characters already; this
// keeps a line well-formed whatever reaches it.
func quoted(s string) string {
	if !strings.ContainsAny(s, "\"\r\n") {
		return s
	}
	return strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ").Replace(s)
}

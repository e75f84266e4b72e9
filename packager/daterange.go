package packager

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidEvent is an event the packager cannot carry, such as a
// DATERANGE attribute name outside RFC 8216bis's grammar.
var ErrInvalidEvent = errors.New("invalid event")

// DateRange is what an event's EXT-X-DATERANGE says besides its ID (the
// event's ID) and its dates, which the packager sets from where the event
// landed: START-DATE, and END-DATE with DURATION once the end is known.
type DateRange struct {
	// Class is the CLASS attribute; empty leaves it out.
	Class string `json:"class,omitempty"`
	// Attrs are the client-defined attributes, written in this order.
	Attrs []DateRangeAttr `json:"attrs,omitempty"`
}

// AttrKind is the type of a DATERANGE attribute value (RFC 8216bis 4.2).
type AttrKind uint8

// Attribute value types. RFC 8216bis 4.4.5.1: an X- attribute's value is a
// quoted-string, a hexadecimal-sequence or a decimal-floating-point.
const (
	AttrString AttrKind = iota // quoted-string: String
	AttrHex                    // hexadecimal-sequence: Bytes, as 0x and upper-case hex
	AttrNumber                 // decimal-floating-point: Number, not negative
)

// DateRangeAttr is one client-defined attribute of a DATERANGE.
type DateRangeAttr struct {
	// Name starts with "X-" and holds only A-Z, 0-9 and '-'.
	Name   string   `json:"name"`
	Kind   AttrKind `json:"kind"`
	String string   `json:"string,omitempty"`
	Bytes  []byte   `json:"bytes,omitempty"`
	Number float64  `json:"number,omitempty"`
}

// QuotedAttr is a quoted-string attribute.
func QuotedAttr(name, value string) DateRangeAttr {
	return DateRangeAttr{Name: name, Kind: AttrString, String: value}
}

// HexAttr is a hexadecimal-sequence attribute.
func HexAttr(name string, value []byte) DateRangeAttr {
	return DateRangeAttr{Name: name, Kind: AttrHex, Bytes: value}
}

// NumberAttr is a decimal-floating-point attribute.
func NumberAttr(name string, value float64) DateRangeAttr {
	return DateRangeAttr{Name: name, Kind: AttrNumber, Number: value}
}

// dateRangeTime is ISO 8601 with milliseconds, as RFC 8216bis 4.4.5.1 asks
// of START-DATE and END-DATE ("an ISO-8601 date"); always UTC.
const dateRangeTime = "2006-01-02T15:04:05.000Z07:00"

// check refuses what would make the tag malformed rather than rewriting
// it: an attribute name outside the grammar, a value of no known type.
func (d *DateRange) check() error {
	for _, a := range d.Attrs {
		// RFC 8216bis 4.2: an AttributeName is [A-Z], [0-9] and '-';
		// 4.4.5.1: a client attribute's name starts with "X-".
		if !strings.HasPrefix(a.Name, "X-") || strings.Trim(a.Name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("%w: DATERANGE attribute name %q", ErrInvalidEvent, a.Name)
		}
		switch a.Kind {
		case AttrString, AttrHex:
		case AttrNumber:
			if a.Number < 0 || math.IsNaN(a.Number) || math.IsInf(a.Number, 0) {
				return fmt.Errorf("%w: DATERANGE attribute %s = %v", ErrInvalidEvent, a.Name, a.Number)
			}
		default:
			return fmt.Errorf("%w: DATERANGE attribute %s of kind %d", ErrInvalidEvent, a.Name, a.Kind)
		}
	}
	return nil
}

// dateRangeParts renders the parts of an event's tag that do not depend on
// where it lands, once: the text before the START-DATE value and the
// attributes after the dates.
//
//	#EXT-X-DATERANGE:ID="<id>"[,CLASS="<class>"],START-DATE="<start>"
//	[,END-DATE="<end>",DURATION=<s>][,DURATION=<s>]<attrs>
func dateRangeParts(id string, d *DateRange) (head, tail string) {
	head = `#EXT-X-DATERANGE:ID="` + quoted(id) + `"`
	if d.Class != "" {
		head += `,CLASS="` + quoted(d.Class) + `"`
	}
	head += `,START-DATE="`
	var b strings.Builder
	for _, a := range d.Attrs {
		b.WriteByte(',')
		b.WriteString(a.Name)
		b.WriteByte('=')
		switch a.Kind {
		case AttrString:
			b.WriteByte('"')
			b.WriteString(quoted(a.String))
			b.WriteByte('"')
		case AttrHex:
			// RFC 8216bis 4.2: a hexadecimal-sequence is "0x" or "0X"
			// followed by characters from [0..9] and [A..F].
			b.WriteString("0x")
			b.WriteString(strings.ToUpper(hex.EncodeToString(a.Bytes)))
		case AttrNumber:
			b.WriteString(strconv.FormatFloat(a.Number, 'f', -1, 64))
		}
	}
	return head, b.String()
}

// renderDateRange writes the tag line (without newline) for an event that
// starts at start and, once known, ends at end (zero while open). DURATION
// is end-start once the end is known (RFC 8216bis 4.4.5.1: "If both
// DURATION and END-DATE are present, the value of END-DATE MUST equal
// START-DATE + DURATION"), else dur if positive, else absent.
func renderDateRange(head, tail string, start, end time.Time, dur time.Duration) string {
	var b strings.Builder
	b.Grow(len(head) + len(tail) + 80)
	b.WriteString(head)
	b.WriteString(start.UTC().Format(dateRangeTime))
	b.WriteByte('"')
	switch {
	case !end.IsZero():
		b.WriteString(`,END-DATE="`)
		b.WriteString(end.UTC().Format(dateRangeTime))
		b.WriteString(`",DURATION=`)
		b.WriteString(drSeconds(end.Sub(start)))
	case dur > 0:
		b.WriteString(",DURATION=")
		b.WriteString(drSeconds(dur))
	}
	b.WriteString(tail)
	return b.String()
}

// DateRangeTag returns the event's EXT-X-DATERANGE line (without newline)
// for a start at start and an end at end (zero while open): the line the
// packager writes in the media playlists. Empty if the event has no
// DateRange.
func (ev *Event) DateRangeTag(start, end time.Time) (string, error) {
	if ev.DateRange == nil {
		return "", nil
	}
	if err := ev.DateRange.check(); err != nil {
		return "", err
	}
	head, tail := dateRangeParts(ev.ID, ev.DateRange)
	return renderDateRange(head, tail, start, end, ev.Duration), nil
}

// drSeconds formats a DURATION: a decimal-floating-point number of seconds
// with three decimals, always; never negative (RFC 8216bis 4.4.5.1: DURATION "MUST NOT be
// negative").
func drSeconds(d time.Duration) string {
	d = max(d, 0).Round(time.Millisecond)
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// quoted replaces what a quoted-string cannot hold (RFC 8216bis 4.2: no
// double quote, CR or LF). The cue API refuses such characters already;
// this keeps a line well-formed whatever reaches it.
func quoted(s string) string {
	if !strings.ContainsAny(s, "\"\r\n") {
		return s
	}
	return strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ").Replace(s)
}

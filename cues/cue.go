// Package cues turns product cues posted by a merchant into timed metadata
// that stock players read: an ID3 tag in an emsg box in the fMP4 parts and an
// EXT-X-DATERANGE in every media playlist. It owns the cue schema, the cue
// API, the cue store and the player SDK; the packager places the events.
// docs/cues.md is the player developer's view of all of it.
package cues

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Schema limits. They are part of cue schema v1 (docs/cues.md), not config:
// a player can rely on them.
const (
	// Version is the cue schema version, the `v` field.
	Version = 1
	// TypeProduct shows a product card.
	TypeProduct = "product"
	// TypePoll asks the audience a question with 2 to 4 options, open for
	// the cue's duration.
	TypePoll = "poll"
	// TypePollResult is the outcome of a poll, which the Service emits
	// itself at the poll's end media time; it cannot be posted.
	TypePollResult = "poll_result"
	// TypeDeal is a flash deal on a product, counting down to the cue's end
	// media time.
	TypeDeal = "deal"

	maxSKU      = 128  // bytes
	maxTitle    = 256  // characters
	maxLabel    = 32   // characters, for badge and discount
	maxURL      = 2048 // bytes
	maxAmount   = 32   // bytes
	maxMediaMs  = 1e12 // about 31 years of media time
	maxDuration = 12 * 60 * 60 * 1000
)

// MaxDurationMs is the largest duration_ms a cue may have: 12 h. An emsg
// event_duration is 32 bits in timescale units, so at 90 kHz it holds 13.2 h.
const MaxDurationMs = maxDuration

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	amountPattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,17})(\.[0-9]{1,4})?$`)
	currencyPat   = regexp.MustCompile(`^[A-Z]{3}$`)
)

// Cue is a product cue, schema v1. The JSON form is what the API accepts and
// returns; what players receive in-band is Wire.
type Cue struct {
	// V is the schema version; it must be 1.
	V int `json:"v"`
	// ID identifies the cue in its stream. It matches [A-Za-z0-9_-]{1,64},
	// and an id used once in a stream is never accepted again. The API
	// generates one when the client sends none.
	ID string `json:"id,omitempty"`
	// Type is what the cue shows: "product", "poll", "poll_result" or
	// "deal". Each type has its own field below; players ignore types they
	// do not know.
	Type string `json:"type"`
	// Replaces names an active product or deal cue of the stream that this
	// one takes over (a price drop, "only 3 left", sold out): the old cue
	// ends where this one starts, and players swap the card in place.
	// RFC 8216bis 4.4.5.1 forbids changing a DATERANGE's attributes under
	// its ID, so an update is a new cue with a new id.
	Replaces string `json:"replaces,omitempty"`
	// Product is the product shown, for type "product".
	Product *Product `json:"product,omitempty"`
	// Poll is the question asked, for type "poll".
	Poll *Poll `json:"poll,omitempty"`
	// PollResult is a closed poll's outcome, for type "poll_result".
	PollResult *PollResult `json:"poll_result,omitempty"`
	// Deal is the flash deal, for type "deal".
	Deal *Deal `json:"deal,omitempty"`
	// At is when the cue starts. It defaults to "now".
	At At `json:"at"`
	// DurationMs is how long the cue lasts. Zero means open-ended: until
	// the cue is deleted.
	DurationMs int64 `json:"duration_ms,omitempty"`
}

// Product is what a product cue shows.
type Product struct {
	SKU      string `json:"sku"`
	Title    string `json:"title"`
	Price    Price  `json:"price"`
	ImageURL string `json:"image_url"`
	// URL is where "buy" goes.
	URL string `json:"url"`
	// Badge is an optional short label, e.g. "NEW".
	Badge string `json:"badge,omitempty"`
	// Discount is an optional short display label, e.g. "-20%".
	Discount string `json:"discount,omitempty"`
}

// Poll is what a poll cue asks. The audience answers through the signals
// API while the cue is on (Service.OpenPoll).
type Poll struct {
	Question string `json:"question"`
	// Options are the answers, 2 to 4, each shown as a button.
	Options []string `json:"options"`
}

// PollResult is the outcome of poll Poll, emitted by the Service when the
// poll closes. Question and Options repeat the poll's, so that a viewer
// who missed the poll can show the result.
type PollResult struct {
	Poll     string   `json:"poll"`
	Question string   `json:"question"`
	Options  []string `json:"options"`
	// Counts are the votes per option, in Options' order.
	Counts []int64 `json:"counts"`
}

// Deal is a flash deal: Product at Price until the cue ends. The end is a
// media time (start + duration_ms), so every viewer's countdown reaches
// zero on the same frame.
type Deal struct {
	Product Product `json:"product"`
	// Price is the deal price; Product.Price is the regular one.
	Price Price `json:"price"`
	// Units is how many are available at that price; 0 leaves it unsaid.
	Units int64 `json:"units,omitempty"`
}

// Price is an amount in a currency.
type Price struct {
	// Amount is a decimal string, e.g. "19.99"; never a float.
	Amount string `json:"amount"`
	// Currency is an ISO 4217 code, e.g. "EUR".
	Currency string `json:"currency"`
}

// AtKind says how At places a cue.
type AtKind int

// The ways a cue can be placed.
const (
	// AtNow places the cue on the next frame that reaches the packager.
	AtNow AtKind = iota
	// AtWall places the cue at a wall-clock time, mapped through
	// EXT-X-PROGRAM-DATE-TIME.
	AtWall
	// AtMedia places the cue at a media time, relative to the start of the
	// stream's media timeline.
	AtMedia
)

// At is the `at` field: "now", an RFC 3339 time, or a media time in ms (a
// JSON number).
type At struct {
	Kind  AtKind
	Wall  time.Time     // for AtWall
	Media time.Duration // for AtMedia; whole milliseconds
}

// MarshalJSON writes "now", an RFC 3339 string or a number of ms.
func (a At) MarshalJSON() ([]byte, error) {
	switch a.Kind {
	case AtWall:
		return json.Marshal(a.Wall.Format(time.RFC3339Nano))
	case AtMedia:
		return strconv.AppendInt(nil, a.Media.Milliseconds(), 10), nil
	default:
		return []byte(`"now"`), nil
	}
}

// UnmarshalJSON reads what MarshalJSON writes, for clients of the API
// written in Go. DecodeCue does not use it: it reports field errors itself.
func (a *At) UnmarshalJSON(b []byte) error {
	at, msg := parseAt(b)
	if msg != "" {
		return &FieldError{Field: "at", Message: msg}
	}
	*a = at
	return nil
}

// FieldError is a cue that failed validation, naming the field (a dotted
// path like "product.price.amount"; empty for the body as a whole). The API
// sends it as the body of a 400.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "invalid cue: " + e.Message
	}
	return "invalid cue: " + e.Field + ": " + e.Message
}

// MarshalJSON renders {"error":"invalid cue","field":...,"message":...}.
func (e *FieldError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Error   string `json:"error"`
		Field   string `json:"field"`
		Message string `json:"message"`
	}{"invalid cue", e.Field, e.Message})
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate checks every field of c against schema v1. It returns the first
// problem as a *FieldError; an empty ID is allowed (the API generates one).
func (c *Cue) Validate() error {
	if c.V != Version {
		return fieldErr("v", "must be %d", Version)
	}
	if c.ID != "" && !idPattern.MatchString(c.ID) {
		return fieldErr("id", "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")
	}
	if err := c.validateBody(); err != nil {
		return err
	}
	switch c.At.Kind {
	case AtNow:
	case AtWall:
		if c.At.Wall.IsZero() {
			return fieldErr("at", "must be \"now\", an RFC 3339 time or a media time in ms")
		}
	case AtMedia:
		if c.At.Media < 0 || c.At.Media%time.Millisecond != 0 || c.At.Media.Milliseconds() > maxMediaMs {
			return fieldErr("at", "media time must be a whole number of ms from 0 to %d", int64(maxMediaMs))
		}
	default:
		return fieldErr("at", "must be \"now\", an RFC 3339 time or a media time in ms")
	}
	if c.DurationMs < 0 || c.DurationMs > maxDuration {
		return fieldErr("duration_ms", "must be a whole number of ms from 1 to %d; leave it out for an open-ended cue", maxDuration)
	}
	return c.validateTiming()
}

func (p *Product) validate(path string) error {
	if err := checkText(path+".sku", p.SKU, true, maxSKU, false); err != nil {
		return err
	}
	if err := checkText(path+".title", p.Title, true, maxTitle, true); err != nil {
		return err
	}
	if err := p.Price.validate(path + ".price"); err != nil {
		return err
	}
	if err := checkURL(path+".image_url", p.ImageURL); err != nil {
		return err
	}
	if err := checkURL(path+".url", p.URL); err != nil {
		return err
	}
	if err := checkText(path+".badge", p.Badge, false, maxLabel, true); err != nil {
		return err
	}
	return checkText(path+".discount", p.Discount, false, maxLabel, true)
}

func (p *Price) validate(path string) error {
	if p.Amount == "" {
		return fieldErr(path+".amount", "required: a decimal string like \"19.99\"")
	}
	if len(p.Amount) > maxAmount || !amountPattern.MatchString(p.Amount) {
		return fieldErr(path+".amount", "must be a decimal string like \"19.99\" (digits, at most 4 decimals, no sign or exponent)")
	}
	if !currencyPat.MatchString(p.Currency) {
		return fieldErr(path+".currency", "must be an ISO 4217 code: 3 upper-case letters like \"EUR\"")
	}
	return nil
}

// checkText refuses what an HLS quoted-string cannot carry. RFC 8216bis
// 4.2: a quoted-string "MUST NOT include any double quote (") or carriage
// return or line feed"; we refuse every control character with them.
func checkText(field, s string, required bool, max int, chars bool) error {
	if s == "" {
		if required {
			return fieldErr(field, "required")
		}
		return nil
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "must be UTF-8")
	}
	n := len(s)
	unit := "bytes"
	if chars {
		n, unit = utf8.RuneCountInString(s), "characters"
	}
	if n > max {
		return fieldErr(field, "must be at most %d %s", max, unit)
	}
	if strings.TrimSpace(s) == "" {
		return fieldErr(field, "must not be blank")
	}
	for _, r := range s {
		if r == '"' || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return fieldErr(field, "must not contain '\"' or control characters (HLS quoted-strings cannot carry them)")
		}
	}
	return nil
}

func checkURL(field, s string) error {
	if s == "" {
		return fieldErr(field, "required: an absolute http or https URL")
	}
	if len(s) > maxURL {
		return fieldErr(field, "must be at most %d bytes", maxURL)
	}
	if err := checkText(field, s, true, maxURL, false); err != nil {
		return err
	}
	if strings.ContainsAny(s, " \\") {
		return fieldErr(field, "must not contain spaces or '\\' (percent-encode them)")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.User != nil {
		return fieldErr(field, "must be an absolute http or https URL without user info")
	}
	return nil
}

// Wire is the compact JSON that players receive: in the ID3 TXXX value and,
// hex-encoded, in X-COM-SHOPCAST-CUE. It is the cue without `at` (the
// carriage gives the time): {"v":1,"id":...,"type":...,"replaces":...,
// "product"|"poll"|"poll_result"|"deal":{...},"duration_ms":...}. HTML characters are not escaped.
func (c *Cue) Wire() ([]byte, error) {
	w := struct {
		V          int         `json:"v"`
		ID         string      `json:"id"`
		Type       string      `json:"type"`
		Replaces   string      `json:"replaces,omitempty"`
		Product    *Product    `json:"product,omitempty"`
		Poll       *Poll       `json:"poll,omitempty"`
		PollResult *PollResult `json:"poll_result,omitempty"`
		Deal       *Deal       `json:"deal,omitempty"`
		DurationMs int64       `json:"duration_ms,omitempty"`
	}{c.V, c.ID, c.Type, c.Replaces, c.Product, c.Poll, c.PollResult, c.Deal, c.DurationMs}
	return compactJSON(w)
}

// EndWire is the compact JSON of the END event of cue id:
// {"v":1,"id":"...","end":true}.
func EndWire(id string) ([]byte, error) {
	return compactJSON(struct {
		V   int    `json:"v"`
		ID  string `json:"id"`
		End bool   `json:"end"`
	}{Version, id, true})
}

func compactJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

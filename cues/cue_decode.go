package cues

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// DecodeCue decodes and validates one cue, strictly: the body is exactly one
// JSON object, with no unknown or repeated fields at any level and nothing
// after it. Every error is a *FieldError naming the field.
func DecodeCue(data []byte) (*Cue, error) {
	raw, err := oneValue(data)
	if err != nil {
		return nil, err
	}
	c, err := decodeCueValue(raw, "")
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := checkPostable(c, ""); err != nil {
		return nil, err
	}
	return c, nil
}

// oneValue returns the single JSON value in data, refusing trailing data.
func oneValue(data []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fieldErr("", "empty body: expected a JSON object")
		}
		return nil, fieldErr("", "invalid JSON: %v", jsonMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fieldErr("", "unexpected data after the JSON value")
	}
	return raw, nil
}

func jsonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return err.Error()
}

// decodeCueValue decodes a cue object without validating it. prefix names
// the cue in field paths ("" for a body, "[2]" for a schedule entry).
func decodeCueValue(raw json.RawMessage, prefix string) (*Cue, error) {
	p := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	c := &Cue{}
	err := eachField(raw, prefix, func(key string, v json.RawMessage) error {
		var err error
		switch key {
		case "v":
			c.V, err = intField(p("v"), v, "must be 1")
		case "id":
			if !isNull(v) {
				c.ID, err = stringField(p("id"), v)
				if err == nil && c.ID == "" {
					err = fieldErr(p("id"), "must not be empty; leave it out to have one generated")
				}
			}
		case "type":
			c.Type, err = stringField(p("type"), v)
		case "product":
			if !isNull(v) {
				c.Product, err = decodeProduct(v, p("product"))
			}
		case "replaces":
			if !isNull(v) {
				c.Replaces, err = stringField(p("replaces"), v)
			}
		case "poll":
			if !isNull(v) {
				c.Poll, err = decodePoll(v, p("poll"))
			}
		case "poll_result":
			if !isNull(v) {
				c.PollResult, err = decodePollResult(v, p("poll_result"))
			}
		case "deal":
			if !isNull(v) {
				c.Deal, err = decodeDeal(v, p("deal"))
			}
		case "at":
			if !isNull(v) {
				var msg string
				if c.At, msg = parseAt(v); msg != "" {
					err = fieldErr(p("at"), "%s", msg)
				}
			}
		case "duration_ms":
			if !isNull(v) {
				var n int
				n, err = intField(p("duration_ms"), v, "must be a whole number of ms")
				if err == nil && n <= 0 {
					err = fieldErr(p("duration_ms"), "must be greater than 0; leave it out for an open-ended cue")
				}
				c.DurationMs = int64(n)
			}
		default:
			err = fieldErr(p(key), "unknown field")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func decodeProduct(raw json.RawMessage, path string) (*Product, error) {
	pr := &Product{}
	err := eachField(raw, path, func(key string, v json.RawMessage) error {
		f := path + "." + key
		var err error
		switch key {
		case "sku":
			pr.SKU, err = stringField(f, v)
		case "title":
			pr.Title, err = stringField(f, v)
		case "price":
			pr.Price, err = decodePrice(v, f)
		case "image_url":
			pr.ImageURL, err = stringField(f, v)
		case "url":
			pr.URL, err = stringField(f, v)
		case "badge":
			if !isNull(v) {
				pr.Badge, err = stringField(f, v)
			}
		case "discount":
			if !isNull(v) {
				pr.Discount, err = stringField(f, v)
			}
		default:
			err = fieldErr(f, "unknown field")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return pr, nil
}

func decodePrice(raw json.RawMessage, path string) (Price, error) {
	var pr Price
	err := eachField(raw, path, func(key string, v json.RawMessage) error {
		f := path + "." + key
		var err error
		switch key {
		case "amount":
			if len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
				return fieldErr(f, "must be a decimal string like \"19.99\", not a JSON number")
			}
			pr.Amount, err = stringField(f, v)
		case "currency":
			pr.Currency, err = stringField(f, v)
		default:
			err = fieldErr(f, "unknown field")
		}
		return err
	})
	return pr, err
}

// eachField calls fn for each member of the JSON object raw, in document
// order, refusing non-objects and repeated names (encoding/json would keep
// the last one silently).
func eachField(raw json.RawMessage, path string, fn func(key string, v json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fieldErr(path, "must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fieldErr(path, "invalid JSON: %v", jsonMessage(err))
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return fieldErr(path, "invalid JSON: %v", jsonMessage(err))
		}
		f := key
		if path != "" {
			f = path + "." + key
		}
		if seen[key] {
			return fieldErr(f, "repeated field")
		}
		seen[key] = true
		if err := fn(key, v); err != nil {
			return err
		}
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

// stringField reads a JSON string. The raw bytes are checked first:
// encoding/json turns invalid UTF-8 and lone surrogate escapes into U+FFFD
// without a word, so after decoding they could no longer be told from a
// U+FFFD the producer meant.
func stringField(field string, v json.RawMessage) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return "", fieldErr(field, "must be a string")
	}
	if !utf8.Valid(v) {
		return "", fieldErr(field, "must be valid UTF-8")
	}
	if esc, ok := loneSurrogate(v); ok {
		return "", fieldErr(field, "must not contain the lone surrogate %s (UTF-16 halves must come in pairs)", esc)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fieldErr(field, "must be a string")
	}
	if r, name, ok := spoofingRune(s); ok {
		return "", fieldErr(field, "must not contain U+%04X (%s): invisible and direction-changing characters can make a title or a price read as something else", r, name)
	}
	return s, nil
}

// loneSurrogate finds a \uD800-\uDFFF escape in a raw JSON string that is
// not half of a pair (RFC 8259 7: a character outside the BMP is escaped as
// a high surrogate followed by a low one) and returns it as written.
func loneSurrogate(v []byte) (string, bool) {
	pendingHigh := "" // a high surrogate escape waiting for its low half
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			if pendingHigh != "" {
				return pendingHigh, true
			}
			continue
		}
		if i+1 >= len(v) {
			break
		}
		if v[i+1] != 'u' {
			if pendingHigh != "" {
				return pendingHigh, true
			}
			i++ // the escaped character, which may be a backslash
			continue
		}
		if i+6 > len(v) {
			break // a syntax error, which json.Unmarshal reports
		}
		esc := string(v[i : i+6])
		n, err := strconv.ParseUint(esc[2:], 16, 16)
		i += 5
		if err != nil {
			continue
		}
		switch {
		case n >= 0xD800 && n <= 0xDBFF:
			if pendingHigh != "" {
				return pendingHigh, true
			}
			pendingHigh = esc
		case n >= 0xDC00 && n <= 0xDFFF:
			if pendingHigh == "" {
				return esc, true
			}
			pendingHigh = ""
		default:
			if pendingHigh != "" {
				return pendingHigh, true
			}
		}
	}
	return pendingHigh, pendingHigh != ""
}

// spoofingRune finds a character that changes how the text around it is
// displayed without being seen itself: Unicode bidirectional formatting
// characters (UAX #9 2: embeddings, overrides, isolates, marks), which can
// reorder "19.99" into "99.91" or a title around it, and zero-width or
// invisible format characters, which make two different titles look
// identical. The zero-width joiners (U+200C, U+200D) are needed inside
// emoji sequences (a family, a skin tone with a profession) and by scripts
// such as Persian and the Indic ones, so they pass between two characters
// of which one at least is outside ASCII; anywhere else (at an edge, next to
// another format character, inside "SKU42") they only hide a difference.
func spoofingRune(s string) (rune, string, bool) {
	prev := rune(-1)
	for i, r := range s {
		last := prev
		prev = r
		var name string
		switch {
		case (r == 0x200C || r == 0x200D) && joins(last, s[i+utf8.RuneLen(r):]):
			continue
		case r == 0x061C:
			name = "ARABIC LETTER MARK"
		case r == 0x180E:
			name = "MONGOLIAN VOWEL SEPARATOR"
		case r >= 0x200B && r <= 0x200D:
			name = "zero-width space or joiner"
		case r == 0x200E || r == 0x200F:
			name = "directional mark"
		case r >= 0x202A && r <= 0x202E:
			name = "directional embedding or override"
		case r >= 0x2060 && r <= 0x2064:
			name = "word joiner or invisible operator"
		case r >= 0x2066 && r <= 0x2069:
			name = "directional isolate"
		case r >= 0x206A && r <= 0x206F:
			name = "deprecated format character"
		case r == 0xFEFF:
			name = "ZERO WIDTH NO-BREAK SPACE"
		default:
			continue
		}
		return r, name, true
	}
	return 0, "", false
}

// joins reports whether a zero-width joiner between before and the first
// character of after sits inside a word or an emoji sequence.
func joins(before rune, after string) bool {
	next, _ := utf8.DecodeRuneInString(after)
	if before < 0 || after == "" || next == utf8.RuneError {
		return false
	}
	visible := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsSymbol(r) }
	return visible(before) && visible(next) && (before > unicode.MaxASCII || next > unicode.MaxASCII)
}

// intField reads a JSON number that is a whole number, written without a
// fraction or exponent.
func intField(field string, v json.RawMessage, msg string) (int, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n > maxMediaMs || n < -maxMediaMs {
		return 0, fieldErr(field, "%s", msg)
	}
	return int(n), nil
}

// parseAt reads the `at` field; msg is empty when it is valid.
func parseAt(v json.RawMessage) (At, string) {
	const usage = "must be \"now\", an RFC 3339 time like \"2025-06-01T18:30:00Z\" or a media time in ms (a JSON number)"
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return At{}, usage
		}
		if s == "now" {
			return At{Kind: AtNow}, ""
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return At{}, usage
		}
		return At{Kind: AtWall, Wall: t}, ""
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 || n > maxMediaMs {
		return At{}, usage + "; a media time is a whole number of ms from 0"
	}
	return At{Kind: AtMedia, Media: time.Duration(n) * time.Millisecond}, ""
}

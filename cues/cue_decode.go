package cues

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
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
			err = eachField(v, f, func(key string, v json.RawMessage) error {
				ff := f + "." + key
				var err error
				switch key {
				case "amount":
					if len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
						return fieldErr(ff, "must be a decimal string like \"19.99\", not a JSON number")
					}
					pr.Price.Amount, err = stringField(ff, v)
				case "currency":
					pr.Price.Currency, err = stringField(ff, v)
				default:
					err = fieldErr(ff, "unknown field")
				}
				return err
			})
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

func stringField(field string, v json.RawMessage) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return "", fieldErr(field, "must be a string")
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fieldErr(field, "must be a string")
	}
	return s, nil
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

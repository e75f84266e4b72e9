package cues

import (
	"encoding/json"
	"fmt"
	"strconv"
)

func decodePoll(raw json.RawMessage, path string) (*Poll, error) {
	p := &Poll{}
	err := eachField(raw, path, func(key string, v json.RawMessage) error {
		f := path + "." + key
		var err error
		switch key {
		case "question":
			p.Question, err = stringField(f, v)
		case "options":
			p.Options, err = stringList(f, v)
		default:
			err = fieldErr(f, "unknown field")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func decodePollResult(raw json.RawMessage, path string) (*PollResult, error) {
	r := &PollResult{}
	err := eachField(raw, path, func(key string, v json.RawMessage) error {
		f := path + "." + key
		var err error
		switch key {
		case "poll":
			r.Poll, err = stringField(f, v)
		case "question":
			r.Question, err = stringField(f, v)
		case "options":
			r.Options, err = stringList(f, v)
		case "counts":
			r.Counts, err = countList(f, v)
		default:
			err = fieldErr(f, "unknown field")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func decodeDeal(raw json.RawMessage, path string) (*Deal, error) {
	d := &Deal{}
	err := eachField(raw, path, func(key string, v json.RawMessage) error {
		f := path + "." + key
		var err error
		switch key {
		case "product":
			var p *Product
			if p, err = decodeProduct(v, f); err == nil {
				d.Product = *p
			}
		case "price":
			d.Price, err = decodePrice(v, f)
		case "units":
			if !isNull(v) {
				var n int
				n, err = intField(f, v, "must be a whole number")
				if err == nil && n <= 0 {
					err = fieldErr(f, "must be greater than 0; leave it out to say nothing")
				}
				d.Units = int64(n)
			}
		default:
			err = fieldErr(f, "unknown field")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// elements returns the members of the JSON array raw.
func elements(field string, raw json.RawMessage) ([]json.RawMessage, error) {
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, fieldErr(field, "must be a JSON array")
	}
	return items, nil
}

func stringList(field string, raw json.RawMessage) ([]string, error) {
	items, err := elements(field, raw)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, v := range items {
		if out[i], err = stringField(fmt.Sprintf("%s[%d]", field, i), v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func countList(field string, raw json.RawMessage) ([]int64, error) {
	items, err := elements(field, raw)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(items))
	for i, v := range items {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "must be a whole number from 0")
		}
		out[i] = n
	}
	return out, nil
}

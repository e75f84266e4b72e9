package cues

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// LoadSchedule reads a cue schedule: a JSON array of cues, each with an id
// and `at` as a media time in ms from the stream's start. StreamStarted
// places it in every stream that starts, once per stream (the ids are then
// used in that stream). It replaces a schedule loaded before.
func (s *Service) LoadSchedule(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cue schedule: %w", err)
	}
	cues, err := DecodeSchedule(data)
	if err != nil {
		return fmt.Errorf("cue schedule %s: %w", path, err)
	}
	s.schedMu.Lock()
	s.schedule = cues
	s.schedMu.Unlock()
	return nil
}

// DecodeSchedule decodes and validates a schedule. Field errors name the
// entry: "[2].product.price.amount".
func DecodeSchedule(data []byte) ([]*Cue, error) {
	raw, err := oneValue(data)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, fieldErr("", "must be a JSON array of cues")
	}
	seen := map[string]bool{}
	out := make([]*Cue, 0, len(items))
	for i, item := range items {
		prefix := fmt.Sprintf("[%d]", i)
		c, err := decodeCueValue(item, prefix)
		if err != nil {
			return nil, err
		}
		if err := c.Validate(); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, fieldErr(prefix+"."+fe.Field, "%s", fe.Message)
			}
			return nil, err
		}
		if err := checkPostable(c, prefix); err != nil {
			return nil, err
		}
		switch {
		case c.ID == "":
			return nil, fieldErr(prefix+".id", "required in a schedule, so that a restart does not place the cue twice")
		case seen[c.ID]:
			return nil, fieldErr(prefix+".id", "repeated in the schedule")
		case c.At.Kind != AtMedia:
			return nil, fieldErr(prefix+".at", "must be a media time in ms from the stream's start")
		}
		seen[c.ID] = true
		out = append(out, c)
	}
	return out, nil
}

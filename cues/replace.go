package cues

import (
	"errors"
	"fmt"

	"github.com/shopcast/shopcast/packager"
)

// ErrNotReplaceable is a `replaces` naming a cue that cannot be replaced:
// unknown, not on screen, or of another kind. It comes wrapped in a
// *FieldError naming "replaces", which the API answers with a 400.
var ErrNotReplaceable = errors.New("the cue to replace is not an active product or deal of this stream")

// endReplaced ends the cue that c replaces, if it names one, and moves
// ev's start to where that cue ended, so that the old card's end and the
// new one's start are the same frame: the END event and END-DATE of the
// old, the emsg presentation_time and START-DATE of the new. Ending first
// and placing at the end's media time, rather than placing "now" and
// ending after, leaves no frame with both cues on and none with neither.
// The stored cue keeps its "now", so that a retry of the POST compares
// equal.
func (s *Service) endReplaced(stream string, c *Cue, ev *packager.Event) error {
	if c.Replaces == "" {
		return nil
	}
	bad := func(why string) error {
		return &FieldError{Field: "replaces", Message: fmt.Sprintf("%v: %s", ErrNotReplaceable, why)}
	}
	old, err := s.Store.Get(stream, c.Replaces)
	switch {
	case errors.Is(err, ErrCueNotFound):
		return bad("no cue " + c.Replaces)
	case err != nil:
		return err
	case old.StateAt(s.now()) != StateActive:
		return bad("cue " + c.Replaces + " is " + string(old.StateAt(s.now())))
	case old.Cue.Type != TypeProduct && old.Cue.Type != TypeDeal:
		return bad("cue " + c.Replaces + " is a " + old.Cue.Type)
	}
	ended, err := s.End(stream, &old)
	if err != nil {
		return fmt.Errorf("replaces %s: %w", c.Replaces, err)
	}
	if ended.State != StateEnded || ended.EndMedia <= 0 {
		return bad("cue " + c.Replaces + " had ended")
	}
	ev.Now = false
	ev.Time = ended.EndMedia
	return nil
}

package cues

import "fmt"

// Limits of the moment cue types (polls, results, deals), part of schema
// v1 like the product limits.
const (
	minPollOptions = 2
	maxPollOptions = 4
	maxQuestion    = 256 // characters
	maxOption      = 64  // characters
	maxUnits       = 1e9
)

// validateBody checks the type and the one field that goes with it: a cue
// carries exactly the field of its type.
func (c *Cue) validateBody() error {
	fields := []struct {
		name, typ string
		set       bool
	}{
		{"product", TypeProduct, c.Product != nil},
		{"poll", TypePoll, c.Poll != nil},
		{"poll_result", TypePollResult, c.PollResult != nil},
		{"deal", TypeDeal, c.Deal != nil},
	}
	known := false
	for _, f := range fields {
		known = known || f.typ == c.Type
	}
	switch {
	case c.Type == "":
		return fieldErr("type", "required; one of %q, %q, %q", TypeProduct, TypePoll, TypeDeal)
	case !known:
		return fieldErr("type", "unknown cue type %q; supported: %q, %q, %q", c.Type, TypeProduct, TypePoll, TypeDeal)
	}
	for _, f := range fields {
		switch {
		case f.typ == c.Type && !f.set:
			return fieldErr(f.name, "required for type %q", c.Type)
		case f.typ != c.Type && f.set:
			return fieldErr(f.name, "not allowed for type %q", c.Type)
		}
	}
	switch c.Type {
	case TypeProduct:
		return c.Product.validate("product")
	case TypePoll:
		return c.Poll.validate("poll")
	case TypePollResult:
		return c.PollResult.validate("poll_result")
	default:
		return c.Deal.validate("deal")
	}
}

// validateTiming checks what the types ask of `at`, duration_ms and
// replaces once each field is valid on its own.
func (c *Cue) validateTiming() error {
	switch c.Type {
	case TypePoll:
		if c.DurationMs == 0 {
			return fieldErr("duration_ms", "required for a poll: it is open for its duration")
		}
	case TypeDeal:
		if c.DurationMs == 0 {
			return fieldErr("duration_ms", "required for a deal: its countdown ends at start + duration_ms")
		}
	}
	if c.Replaces == "" {
		return nil
	}
	switch {
	case c.Type != TypeProduct && c.Type != TypeDeal:
		return fieldErr("replaces", "only a product or a deal cue can replace another")
	case !idPattern.MatchString(c.Replaces):
		return fieldErr("replaces", "must be a cue id: 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")
	case c.Replaces == c.ID:
		return fieldErr("replaces", "must name another cue: an update has a new id")
	case c.At.Kind != AtNow:
		return fieldErr("at", "must be \"now\" for a cue that replaces another: the old one ends where it starts")
	}
	return nil
}

// checkPostable refuses what only the Service may create: poll results.
// prefix names the cue in a schedule ("[2]"), "" for a body.
func checkPostable(c *Cue, prefix string) error {
	if c.Type != TypePollResult {
		return nil
	}
	f := "type"
	if prefix != "" {
		f = prefix + ".type"
	}
	return fieldErr(f, "%q cues are emitted by shopcast when a poll closes; they cannot be posted", TypePollResult)
}

func (p *Poll) validate(path string) error {
	if err := checkText(path+".question", p.Question, true, maxQuestion, true); err != nil {
		return err
	}
	return checkOptions(path+".options", p.Options)
}

func checkOptions(path string, opts []string) error {
	if len(opts) < minPollOptions || len(opts) > maxPollOptions {
		return fieldErr(path, "must have %d to %d options", minPollOptions, maxPollOptions)
	}
	seen := map[string]bool{}
	for i, o := range opts {
		f := fmt.Sprintf("%s[%d]", path, i)
		if err := checkText(f, o, true, maxOption, true); err != nil {
			return err
		}
		if seen[o] {
			return fieldErr(f, "repeats an earlier option")
		}
		seen[o] = true
	}
	return nil
}

func (r *PollResult) validate(path string) error {
	if !idPattern.MatchString(r.Poll) {
		return fieldErr(path+".poll", "must be the poll's cue id")
	}
	if err := checkText(path+".question", r.Question, true, maxQuestion, true); err != nil {
		return err
	}
	if err := checkOptions(path+".options", r.Options); err != nil {
		return err
	}
	if len(r.Counts) != len(r.Options) {
		return fieldErr(path+".counts", "must have one count per option")
	}
	for i, n := range r.Counts {
		if n < 0 {
			return fieldErr(fmt.Sprintf("%s.counts[%d]", path, i), "must not be negative")
		}
	}
	return nil
}

func (d *Deal) validate(path string) error {
	if err := d.Product.validate(path + ".product"); err != nil {
		return err
	}
	if err := d.Price.validate(path + ".price"); err != nil {
		return err
	}
	if d.Price.Currency != d.Product.Price.Currency {
		return fieldErr(path+".price.currency", "must be the product's currency, %q", d.Product.Price.Currency)
	}
	if d.Units < 0 || d.Units > maxUnits {
		return fieldErr(path+".units", "must be a whole number from 1 to %d; leave it out to say nothing", int64(maxUnits))
	}
	return nil
}

package audience

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Kind is what a signal reports.
type Kind uint8

// The kinds of signal.
const (
	// KindHeartbeat: the page is open and playing (every heartbeat
	// interval); viewers now counts the viewers with a recent one.
	KindHeartbeat Kind = iota
	// KindImpression: a product card was shown ("cue").
	KindImpression
	// KindClick: Buy was clicked on a card ("cue", "sku").
	KindClick
	// KindReaction: a heart.
	KindReaction
	// KindVote: an answer to a poll ("poll", "option", from 0).
	KindVote
	numKinds
)

// kindUnknown labels refusals made before a signal's kind is known.
const kindUnknown = "unknown"

var kindNames = [numKinds]string{"heartbeat", "impression", "click", "reaction", "vote"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return kindUnknown
}

func parseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Signal is one decoded, valid signal.
type Signal struct {
	Kind Kind
	// Cue is the product cue's id (impression, click).
	Cue string
	// SKU is the product clicked (click).
	SKU string
	// Poll and Option are the poll's id and the chosen option, from 0
	// (vote).
	Poll   string
	Option int
}

// Request is a decoded POST body: one viewer's signals.
type Request struct {
	Viewer  string
	Signals []Signal
}

// FieldError is a body that is not a valid signal request: Field is the
// dotted path of the field at fault ("signals.2.option"), empty for the
// body as a whole.
type FieldError struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "invalid signal: " + e.Message
	}
	return "invalid signal: " + e.Field + ": " + e.Message
}

func fieldErr(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// wireSignal is a signal as posted. Pointers tell a missing field from a
// zero one.
type wireSignal struct {
	Kind   *string `json:"kind"`
	Cue    *string `json:"cue"`
	SKU    *string `json:"sku"`
	Poll   *string `json:"poll"`
	Option *int    `json:"option"`
}

// wireRequest is the body: a signal with its viewer, or a viewer and a
// batch of signals.
type wireRequest struct {
	Viewer  *string      `json:"viewer"`
	Signals []wireSignal `json:"signals"`
	wireSignal
}

// Limits of the fields.
const (
	minViewerLen = 16
	maxViewerLen = 64
	maxIDLen     = 64
	maxSKULen    = 128
	maxOption    = 16
)

// DecodeRequest decodes and checks a body. At most maxBatch signals are
// accepted in one. Decoding is strict: unknown fields, a value of the
// wrong type and anything after the object are refused. Every error is a
// *FieldError.
func DecodeRequest(body []byte, maxBatch int) (*Request, error) {
	var w wireRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, jsonFieldErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fieldErr("", "data after the JSON object")
	}
	if w.Viewer == nil {
		return nil, fieldErr("viewer", "required")
	}
	if !validViewer(*w.Viewer) {
		return nil, fieldErr("viewer", "must be %d to %d characters of [A-Za-z0-9_-]", minViewerLen, maxViewerLen)
	}
	req := &Request{Viewer: *w.Viewer}
	single := w.wireSignal != (wireSignal{})
	switch {
	case single && w.Signals != nil:
		return nil, fieldErr("signals", "either one signal or a list of signals, not both")
	case single:
		s, err := w.wireSignal.check("")
		if err != nil {
			return nil, err
		}
		req.Signals = []Signal{s}
	case len(w.Signals) == 0:
		return nil, fieldErr("kind", "required (or a list of signals)")
	case len(w.Signals) > maxBatch:
		return nil, fieldErr("signals", "at most %d signals in one request", maxBatch)
	default:
		req.Signals = make([]Signal, 0, len(w.Signals))
		for i, ws := range w.Signals {
			s, err := ws.check("signals." + strconv.Itoa(i) + ".")
			if err != nil {
				return nil, err
			}
			req.Signals = append(req.Signals, s)
		}
	}
	return req, nil
}

// kindFields are the fields each kind takes, all required.
var kindFields = [numKinds][]string{
	KindImpression: {"cue"},
	KindClick:      {"cue", "sku"},
	KindVote:       {"poll", "option"},
}

func (w wireSignal) check(prefix string) (Signal, error) {
	if w.Kind == nil {
		return Signal{}, fieldErr(prefix+"kind", "required")
	}
	k, ok := parseKind(*w.Kind)
	if !ok {
		return Signal{}, fieldErr(prefix+"kind", "must be heartbeat, impression, click, reaction or vote")
	}
	s := Signal{Kind: k}
	// Each kind takes exactly its own fields.
	allowed := kindFields[k]
	for _, f := range [...]struct {
		name string
		set  bool
	}{{"cue", w.Cue != nil}, {"sku", w.SKU != nil}, {"poll", w.Poll != nil}, {"option", w.Option != nil}} {
		if f.set && !slices.Contains(allowed, f.name) {
			return Signal{}, fieldErr(prefix+f.name, "not a field of a %s signal", k)
		}
	}
	for _, f := range allowed {
		switch f {
		case "cue":
			if w.Cue == nil || !validID(*w.Cue) {
				return Signal{}, fieldErr(prefix+"cue", "required: a cue id, 1 to %d characters of [A-Za-z0-9_-]", maxIDLen)
			}
			s.Cue = *w.Cue
		case "sku":
			if w.SKU == nil || !validText(*w.SKU, maxSKULen) {
				return Signal{}, fieldErr(prefix+"sku", "required: 1 to %d bytes of printable text", maxSKULen)
			}
			s.SKU = *w.SKU
		case "poll":
			if w.Poll == nil || !validID(*w.Poll) {
				return Signal{}, fieldErr(prefix+"poll", "required: a poll id, 1 to %d characters of [A-Za-z0-9_-]", maxIDLen)
			}
			s.Poll = *w.Poll
		case "option":
			if w.Option == nil || *w.Option < 0 || *w.Option >= maxOption {
				return Signal{}, fieldErr(prefix+"option", "required: the option's index, from 0")
			}
			s.Option = *w.Option
		}
	}
	return s, nil
}

// jsonFieldErr names the field of a decoding error where encoding/json
// knows it.
func jsonFieldErr(err error) *FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fieldErr(strings.TrimPrefix(te.Field, "wireSignal."), "must be a JSON %s", te.Type.String())
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fieldErr("", "not a JSON object")
	}
	// "json: unknown field \"x\""
	msg := err.Error()
	const unknown = "json: unknown field "
	if rest, ok := strings.CutPrefix(msg, unknown); ok {
		f, uerr := strconv.Unquote(rest)
		if uerr == nil {
			return fieldErr(f, "unknown field")
		}
	}
	return fieldErr("", "not a valid signal")
}

func validViewer(s string) bool {
	return len(s) >= minViewerLen && len(s) <= maxViewerLen && idChars(s)
}

func validID(s string) bool { return len(s) >= 1 && len(s) <= maxIDLen && idChars(s) }

func idChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validText is 1 to max bytes of UTF-8 without control characters or the
// quote (the cue's own rule for its text fields).
func validText(s string, maxBytes int) bool {
	if len(s) == 0 || len(s) > maxBytes {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '"' || r == 0x2028 || r == 0x2029 || r == 0xfffd {
			return false
		}
	}
	return true
}

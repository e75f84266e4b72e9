package webhooks

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The event types a receiver can get.
const (
	// StreamStarted is a stream's new session: its first publisher
	// arrived (not one returning within the grace period).
	StreamStarted = "stream.started"
	// StreamEnded is a session's end: its grace period ran out with no
	// publisher (EXT-X-ENDLIST).
	StreamEnded = "stream.ended"
	// RecordingReady is a recording closed as VOD, ready to replay.
	RecordingReady = "recording.ready"
	// CueStarted is a cue reaching its start on the stream's timeline.
	CueStarted = "cue.started"
	// CueEnded is a cue reaching its end: its duration ran out, it was
	// deleted, or its stream ended.
	CueEnded = "cue.ended"
	// PollClosed is the placement of a cue of type PollResultType: a poll
	// closed and its result went out to the players.
	PollClosed = "poll.closed"
)

// Types lists every event type, in the order of the documentation.
var Types = []string{StreamStarted, StreamEnded, RecordingReady, CueStarted, CueEnded, PollClosed}

// PollResultType is the cue type whose placement is a PollClosed event.
const PollResultType = "poll_result"

// secretPrefix starts every signing secret (Standard Webhooks: the key is
// the base64 after it).
const secretPrefix = "whsec_"

// Endpoint is one receiver of webhooks.
type Endpoint struct {
	// URL is where events are POSTed: http:// or https://.
	URL string `json:"url"`
	// Secret signs the requests: "whsec_" followed by the base64 of 24 to
	// 64 random bytes (Standard Webhooks). It is never logged.
	Secret string `json:"secret"`
	// Events filters the event types sent to this endpoint; empty sends
	// every type.
	Events []string `json:"events,omitempty"`
}

// Validate checks the endpoint. Its errors name the URL without its
// credentials and never show the secret.
func (e *Endpoint) Validate() error {
	u, err := url.Parse(e.URL)
	if err != nil {
		return errors.New("url does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s is not an http:// or https:// URL", u.Redacted())
	}
	if _, err := decodeSecret(e.Secret); err != nil {
		return fmt.Errorf("%s: secret: %w", u.Redacted(), err)
	}
	for _, t := range e.Events {
		if !slices.Contains(Types, t) {
			return fmt.Errorf("%s: events: %q is not one of %s", u.Redacted(), t, strings.Join(Types, ", "))
		}
	}
	return nil
}

// Redacted is the URL without its password, for logs and errors.
func (e *Endpoint) Redacted() string {
	u, err := url.Parse(e.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// LogValue shows the endpoint without its secret.
func (e Endpoint) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", e.Redacted()), slog.Any("events", e.Events))
}

// wants reports whether events of type typ go to this endpoint.
func (e *Endpoint) wants(typ string) bool {
	return len(e.Events) == 0 || slices.Contains(e.Events, typ)
}

// decodeSecret returns the HMAC key of a "whsec_..." secret.
func decodeSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, errors.New(`does not start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New(`is not "whsec_" followed by base64`)
	}
	// Standard Webhooks: secrets are between 24 bytes and 64 bytes.
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("key is %d bytes, not between 24 and 64", len(key))
	}
	return key, nil
}

// Message is the JSON body of a webhook request.
type Message struct {
	// Type is one of Types.
	Type string `json:"type"`
	// Timestamp is when the event happened (for cues: their start or end
	// on the stream's program date-time clock).
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is what an event is about.
type Data struct {
	Stream string `json:"stream"`
	// Session identifies one life of the stream (stream.ended and cue
	// events).
	Session int64 `json:"session,omitempty"`
	// CueID is the cue's id (cue and poll events).
	CueID string `json:"cue_id,omitempty"`
	// Start and End are where the cue starts and ends on the stream's
	// timelines; End is absent from cue.started while the cue is
	// open-ended.
	Start *Time `json:"start,omitempty"`
	End   *Time `json:"end,omitempty"`
	// Cue is the cue as the cue API shows it (cue and poll events).
	Cue json.RawMessage `json:"cue,omitempty"`
	// RecordingID and RecordingURL name a recording (recording.ready);
	// the URL is a path on the server's HTTP origin.
	RecordingID  string `json:"recording_id,omitempty"`
	RecordingURL string `json:"recording_url,omitempty"`
}

// Time is a point on a stream's timelines.
type Time struct {
	// MediaMs is the media time, ms (the players' currentTime clock, as
	// the cue API reports it); absent when the point has none, such as
	// the end of a cue cut short by the end of its stream.
	MediaMs *int64 `json:"media_ms,omitempty"`
	// Wall is its program date-time.
	Wall time.Time `json:"wall"`
}

func mediaTime(d time.Duration, wall time.Time) *Time {
	ms := d.Milliseconds()
	return &Time{MediaMs: &ms, Wall: wall}
}

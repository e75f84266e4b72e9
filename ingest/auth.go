package ingest

import (
	"errors"
	"fmt"

	"github.com/shopcast/shopcast/internal/streamname"
)

// ErrUnknownKey is returned by Auth.Resolve when authentication is on and the
// stream key is not one of Auth.Keys. The caller refuses the publisher.
var ErrUnknownKey = errors.New("unknown stream key")

// ErrInvalidName is returned by Auth.Resolve when a public stream name is not
// 1-64 characters of [A-Za-z0-9_.-], contains "..", or starts with '.'.
var ErrInvalidName = streamname.ErrInvalid

// Auth maps the stream key a publisher presents (in the RTMP URL, the OBS
// "Stream Key" field or the RTSP path) to the public stream name viewers use.
// It is shared by every ingest protocol. The zero value has authentication
// off.
type Auth struct {
	// Enabled turns authentication on: only the keys in Keys may publish, and
	// a key is never shown to viewers or written to logs. It defaults to
	// false, where the key is the public name.
	Enabled bool
	// Keys maps each secret stream key to the public stream name it publishes.
	// Used only when Enabled.
	Keys map[string]string
}

// Resolve returns the public stream name for a stream key.
//
// With authentication off the key is the public name and must be a valid
// name (ErrInvalidName otherwise). With authentication on, a key missing from
// Keys gives ErrUnknownKey; errors never contain the key.
func (a *Auth) Resolve(key string) (string, error) {
	if a == nil || !a.Enabled {
		if err := ValidateName(key); err != nil {
			return "", err
		}
		return key, nil
	}

	name, ok := a.Keys[key]
	if !ok {
		return "", ErrUnknownKey
	}
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("configured name for this key: %w", err)
	}
	return name, nil
}

// ValidateName checks that name can be a public stream name (see package
// streamname); the error wraps ErrInvalidName.
func ValidateName(name string) error { return streamname.Validate(name) }

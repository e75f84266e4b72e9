// Package streamname holds the rule for public stream names, which ingest
// accepts from publishers and the origin and the pages serve: 1 to 64
// characters of [A-Za-z0-9_.-], without "..", not starting with '.'. Such a
// name is safe in a URL path segment, a file name, a log line and a metric
// label.
package streamname

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest name: names end up in URLs and metric labels, so
// they stay short.
const MaxLen = 64

// ErrInvalid is what Validate wraps.
var ErrInvalid = errors.New("invalid stream name")

// Validate says why name is not a stream name, or returns nil.
func Validate(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case len(name) > MaxLen:
		return fmt.Errorf("%w: longer than %d characters", ErrInvalid, MaxLen)
	case name[0] == '.':
		return fmt.Errorf("%w: starts with '.'", ErrInvalid)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%w: contains \"..\"", ErrInvalid)
	}
	if i := badChar(name); i >= 0 {
		return fmt.Errorf("%w: character %q at %d is not one of [A-Za-z0-9_.-]", ErrInvalid, name[i], i)
	}
	return nil
}

// Valid reports whether name is a stream name, without building an error.
func Valid(name string) bool {
	return name != "" && len(name) <= MaxLen && name[0] != '.' &&
		!strings.Contains(name, "..") && badChar(name) < 0
}

// SafeChars reports whether s has only characters of [A-Za-z0-9_.-].
func SafeChars(s string) bool { return badChar(s) < 0 }

// badChar returns the index of the first byte of s outside [A-Za-z0-9_.-],
// or -1.
func badChar(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '_', c == '.', c == '-':
		default:
			return i
		}
	}
	return -1
}

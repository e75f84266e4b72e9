//go:build !linux

package recorder

import "errors"

// freeBytes is not read on this system: the free-space check is off.
func freeBytes(string) (int64, error) { return 0, errors.ErrUnsupported }

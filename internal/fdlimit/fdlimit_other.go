//go:build !unix

package fdlimit

import "errors"

// Raise reports that this system has no RLIMIT_NOFILE to raise.
func Raise() (Limit, error) {
	return Limit{}, errors.New("no open-file limit on this system")
}

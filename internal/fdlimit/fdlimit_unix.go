//go:build unix

package fdlimit

import (
	"fmt"
	"syscall"
)

// Raise sets the soft open-file limit to the hard limit and returns the
// limit in effect afterwards. An error leaves the limit as it was and
// returns it.
func Raise() (Limit, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return Limit{}, fmt.Errorf("getrlimit: %w", err)
	}
	if r.Cur >= r.Max {
		return Limit{Soft: r.Cur, Hard: r.Max}, nil
	}
	before := r.Cur
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return Limit{Soft: before, Hard: r.Max}, fmt.Errorf("setrlimit %d: %w", r.Max, err)
	}
	return Limit{Soft: r.Cur, Hard: r.Max}, nil
}

//go:build unix

package fdlimit

import (
	"syscall"
	"testing"
)

// TestRaise lowers the soft limit (as a shell's ulimit -n would), then
// checks that Raise brings it back to the hard limit, as the kernel reports.
func TestRaise(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = min(orig.Max, 256)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	l, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if l.Soft != orig.Max || now.Cur != orig.Max || l.Hard != orig.Max {
		t.Errorf("Raise = %+v, kernel soft %d; want soft and hard %d", l, now.Cur, orig.Max)
	}
}

func TestFits(t *testing.T) {
	tests := []struct {
		soft, need uint64
		want       bool
	}{
		{1024, 20000, false},
		{1024, 1024 - Reserve, true},
		{1024, 1024 - Reserve + 1, false},
		{1 << 20, 20000 + 1000, true},
	}
	for _, tt := range tests {
		if got := (Limit{Soft: tt.soft, Hard: tt.soft}).Fits(tt.need); got != tt.want {
			t.Errorf("Limit{Soft: %d}.Fits(%d) = %v, want %v", tt.soft, tt.need, got, tt.want)
		}
	}
}

package streamname

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"shop", true},
		{"Shop_1.live-2", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{".hidden", false},
		{"a..b", false},
		{"a/b", false},
		{"a b", false},
		{"a%2e", false},
		{"café", false},
		{"a\x00", false},
	} {
		err := Validate(tc.name)
		if (err == nil) != tc.ok || Valid(tc.name) != tc.ok {
			t.Errorf("%q: Validate %v, Valid %v; want ok %v", tc.name, err, Valid(tc.name), tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v does not wrap ErrInvalid", tc.name, err)
		}
	}
	if !SafeChars("a.b-c_D9") || SafeChars("a/b") || !SafeChars("") {
		t.Error("SafeChars")
	}
}

package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopcast/shopcast/internal/streamname"
)

func TestAuthResolve(t *testing.T) {
	on := &Auth{Enabled: true, Keys: map[string]string{
		"sk_live_9f8e7d": "shop-1",
		"sk_bad_name":    "../etc",
	}}

	for _, tc := range []struct {
		name    string
		auth    *Auth
		key     string
		want    string
		wantErr error
	}{
		{"off: key is the name", &Auth{}, "shop-1", "shop-1", nil},
		{"off: nil Auth", nil, "Shop_2.live", "Shop_2.live", nil},
		{"off: 64 chars", &Auth{}, strings.Repeat("a", 64), strings.Repeat("a", 64), nil},
		{"off: 65 chars", &Auth{}, strings.Repeat("a", 65), "", ErrInvalidName},
		{"off: empty", &Auth{}, "", "", ErrInvalidName},
		{"off: dot dot", &Auth{}, "a..b", "", ErrInvalidName},
		{"off: leading dot", &Auth{}, ".hidden", "", ErrInvalidName},
		{"off: slash", &Auth{}, "a/b", "", ErrInvalidName},
		{"off: space", &Auth{}, "a b", "", ErrInvalidName},
		{"off: percent", &Auth{}, "a%2e", "", ErrInvalidName},
		{"off: non-ASCII", &Auth{}, "café", "", ErrInvalidName},
		{"on: known key", on, "sk_live_9f8e7d", "shop-1", nil},
		{"on: unknown key", on, "shop-1", "", ErrUnknownKey},
		{"on: empty key", on, "", "", ErrUnknownKey},
		{"on: configured name invalid", on, "sk_bad_name", "", ErrInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.auth.Resolve(tc.key)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Resolve(%q) error = %v, want %v", tc.key, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("Resolve(%q) = %q, want %q", tc.key, got, tc.want)
			}
			if tc.auth != nil && tc.auth.Enabled && err != nil && tc.key != "" && strings.Contains(err.Error(), tc.key) {
				t.Fatalf("error %q contains the secret key", err)
			}
		})
	}
}

func FuzzAuthResolve(f *testing.F) {
	for _, s := range []string{"shop-1", "", "..", ".a", "a..b", "a/b", strings.Repeat("x", 70), "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name, err := (&Auth{}).Resolve(key)
		if err != nil {
			return
		}
		// An accepted name is safe as a path segment and a file name.
		if name != key || name == "" || len(name) > streamname.MaxLen || name[0] == '.' ||
			strings.Contains(name, "..") || strings.ContainsAny(name, "/\\?#% \x00") {
			t.Fatalf("accepted unsafe name %q", name)
		}
	})
}

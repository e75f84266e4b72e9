package webhooks

import (
	"strings"
	"testing"
)

// FuzzEndpointValidate: an endpoint from the configuration never panics
// the check, and its errors never show the secret.
func FuzzEndpointValidate(f *testing.F) {
	f.Add("https://shop.example/hooks", testSecret, "cue.started")
	f.Add("https://u:p@a/", "whsec_", "")
	f.Add("http://[::1", "whsec_====", "poll.closed")
	f.Add("https://a/", "whsec_c2hvcnQ=", "x")
	f.Fuzz(func(t *testing.T, url, secret, event string) {
		ep := Endpoint{URL: url, Secret: secret}
		if event != "" {
			ep.Events = []string{event}
		}
		err := ep.Validate()
		if err == nil {
			if _, kerr := decodeSecret(secret); kerr != nil {
				t.Fatalf("accepted a secret that does not decode: %v", kerr)
			}
			return
		}
		if key := strings.TrimPrefix(secret, secretPrefix); len(key) >= 8 && strings.Contains(err.Error(), key) {
			t.Fatalf("error shows the secret: %v", err)
		}
	})
}

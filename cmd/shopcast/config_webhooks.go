package main

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/shopcast/shopcast/webhooks"
)

// webhooksValue is webhooks: a JSON list of endpoints, from the file or
// the environment. Its String and errors never show a secret.
type webhooksValue []webhooks.Endpoint

func (v *webhooksValue) String() string {
	if v == nil || len(*v) == 0 {
		return "[]"
	}
	urls := make([]string, len(*v))
	for i := range *v {
		urls[i] = (*v)[i].Redacted()
	}
	return strings.Join(urls, ",")
}

// Set parses the JSON list, as the environment gives it.
func (v *webhooksValue) Set(s string) error { return v.SetJSON(json.RawMessage(s)) }

// SetJSON parses [{"url": ..., "secret": ..., "events": [...]}, ...],
// replacing any earlier endpoints. Server.Validate checks each.
func (v *webhooksValue) SetJSON(raw json.RawMessage) error {
	var eps []webhooks.Endpoint
	// The decoder's errors may quote a value: a secret.
	if err := json.Unmarshal(raw, &eps); err != nil {
		return errors.New(`want a list [{"url": "https://...", "secret": "whsec_...", "events": [...]}]`)
	}
	if eps == nil {
		eps = []webhooks.Endpoint{}
	}
	*v = eps
	return nil
}

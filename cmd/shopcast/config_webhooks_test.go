package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestConfigWebhooks: endpoints from the environment or the file, checked
// at load, their secrets shown nowhere (log line of the config, errors).
func TestConfigWebhooks(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const key = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var out bytes.Buffer
	good := `[{"url": "https://user:pw-4e5f@shop.example/hooks", "secret": "` + secret + `", "events": ["cue.started"]}]`
	c, err := loadConfig(nil, envMap{"SHOPCAST_WEBHOOKS": good}.lookup, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Webhooks) != 1 || c.Webhooks[0].Secret != secret || c.Webhooks[0].Events[0] != "cue.started" {
		t.Fatalf("webhooks %+v", c.Webhooks)
	}
	c, err = loadConfig([]string{"-config", writeFile(t, `{"webhooks": `+good+`}`)}, envMap{}.lookup, &out)
	if err != nil || len(c.Webhooks) != 1 {
		t.Fatalf("from the file: %+v, %v", c.Webhooks, err)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "config", c)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "config", c)
	if !strings.Contains(out.String(), "https://user:xxxxx@shop.example/hooks") {
		t.Errorf("the log does not show the endpoint:\n%s", out.String())
	}
	for _, bad := range []struct{ env, want string }{
		{`[{"url": "https://a/", "secret": "` + key + `"}]`, `"whsec_"`},
		{`[{"url": "ftp://a/", "secret": "` + secret + `"}]`, "not an http"},
		{`[{"url": "https://a/", "secret": "` + secret + `", "events": ["stream.paused"]}]`, "stream.paused"},
		{`{"url": "https://a/", "secret": "` + secret + `"}`, "want a list"},
		{`[{"url": "https://a/", "secret": 12` + key + `}]`, "want a list"},
	} {
		_, err := loadConfig(nil, envMap{"SHOPCAST_WEBHOOKS": bad.env}.lookup, &out)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want one with %s", bad.env, err, bad.want)
			continue
		}
		out.WriteString(err.Error())
	}
	for _, s := range []string{key, "pw-4e5f"} {
		if strings.Contains(out.String(), s) {
			t.Errorf("secret %q shown in:\n%s", s, out.String())
		}
	}
}

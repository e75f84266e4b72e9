package ingest

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// joinRTMPURL builds the URL the way gortmplib's ServerConn does from the
// connect command's tcUrl and the publish command's stream name.
func joinRTMPURL(tcURL, streamName string) (*url.URL, error) {
	if streamName != "" && streamName[0] != '?' {
		tcURL += "/" + streamName
	}
	return url.Parse(tcURL)
}

func TestStreamKeyFromURL(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tcURL      string
		streamName string
		want       string
		wantErr    error
	}{
		{"ffmpeg live/name", "rtmp://h:1935/live", "name", "name", nil},
		{"OBS server and key field", "rtmp://h/live", "sk_abc-123", "sk_abc-123", nil},
		{"leading slash in key", "rtmp://h/live", "/name", "name", nil},
		{"server with trailing slash", "rtmp://h/live/", "name", "name", nil},
		{"key with query", "rtmp://h/live", "name?foo=bar", "name", nil},
		{"key with query and slash", "rtmp://h/live", "/name?foo=bar&x=1", "name", nil},
		{"trailing slash after key", "rtmp://h/live", "name/", "name", nil},
		{"key in tcUrl, empty stream name", "rtmp://h/live/name", "", "name", nil},
		{"leading slash in tcUrl path", "rtmp://h//live", "name", "name", nil},
		{"bad app", "rtmp://h/app", "name", "", errBadApp},
		{"app case matters", "rtmp://h/Live", "name", "", errBadApp},
		{"no app, key as app", "rtmp://h", "name", "", errBadApp},
		{"empty key", "rtmp://h/live", "", "", errNoKey},
		{"only query", "rtmp://h/live", "?foo=bar", "", errNoKey},
		{"only slashes", "rtmp://h/live", "//", "", errNoKey},
		// Names are validated later by Auth.Resolve: ".." passes here and
		// is refused there.
		{"dot dot", "rtmp://h/live", "..", "..", nil},
		{"nested path", "rtmp://h/live", "a/b", "a/b", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := joinRTMPURL(tc.tcURL, tc.streamName)
			if err != nil {
				t.Fatal(err)
			}
			got, err := streamKeyFromURL(u)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("key = %q, want %q", got, tc.want)
			}
			if err != nil && tc.streamName != "" && strings.Contains(err.Error(), tc.streamName) {
				t.Fatalf("error %q repeats the key", err)
			}
		})
	}
}

func FuzzStreamKeyFromURL(f *testing.F) {
	f.Add("rtmp://h/live", "name")
	f.Add("rtmp://h/live/", "/name?x=y")
	f.Add("rtmp://h", "")
	f.Fuzz(func(t *testing.T, tcURL, streamName string) {
		u, err := joinRTMPURL(tcURL, streamName)
		if err != nil {
			return
		}
		key, err := streamKeyFromURL(u)
		if err == nil && (key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/")) {
			t.Fatalf("key %q from %q + %q", key, tcURL, streamName)
		}
	})
}

package origin

import (
	"strings"
	"testing"

	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/internal/streamname"
	"github.com/shopcast/shopcast/packager"
)

func FuzzParseLivePath(f *testing.F) {
	for _, s := range []string{
		"/live/a/index.m3u8", "/live/a/part12.3.m4s", "/live/../etc/passwd",
		"/live/%2e%2e/index.m3u8", "/live/a%2fb/index.m3u8", "/live/a/%00",
		"/live//index.m3u8", "/live/a/init.mp4/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, file, ok := parseLivePath(p)
		if !ok {
			return
		}
		for _, s := range []string{name, file} {
			if s == "" || s[0] == '.' || strings.Contains(s, "..") || !streamname.SafeChars(s) {
				t.Fatalf("%q -> %q %q", p, name, file)
			}
		}
		if _, err := hlsname.Parse(file); err != nil {
			t.Fatalf("%q -> %q, which the packager does not name: %v", p, file, err)
		}
	})
}

func FuzzParseDirectives(f *testing.F) {
	for _, s := range []string{
		"_HLS_msn=1&_HLS_part=2&_HLS_skip=YES", "_HLS_part=1", "cb=1&_HLS_msn=%35",
		"_HLS_msn=99999999999999999999", "_HLS_skip=v2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		var req packager.Request
		if err := parseDirectives(q, &req); err != nil {
			return
		}
		if req.MSN < -1 || req.Part < -1 || (req.Part >= 0 && req.MSN < 0) {
			t.Fatalf("%q -> %+v", q, req)
		}
	})
}

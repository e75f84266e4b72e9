package steering

import (
	"strings"
	"testing"
)

// FuzzRewrite: whatever the playlist, the rewrite does not panic, and a
// playlist with variants comes out with one steering tag and every
// variant once per pathway.
func FuzzRewrite(f *testing.F) {
	f.Add(packagerMultivariant, "/live/demo/index.m3u8")
	f.Add("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "/live/x/t/tok/index.m3u8")
	f.Add("#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\n%zz\r\n", "/live/%2F/index.m3u8")
	s, err := New(Config{Pathways: []Pathway{{ID: "a", URL: "https://a.example.com"}, {ID: "b", URL: "http://b:8080/p/"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body, path string) {
		out := string(s.Rewrite("demo", path, []byte(body)))
		in := strings.Count(body, "#EXT-X-STREAM-INF:")
		if in == 0 || out == body {
			return
		}
		if n := strings.Count(out, "#EXT-X-CONTENT-STEERING:"); n != 1 {
			t.Errorf("%d steering tags", n)
		}
		if n := strings.Count(out, `,PATHWAY-ID="a",STABLE-VARIANT-ID=`); n != strings.Count(out, `,PATHWAY-ID="b",STABLE-VARIANT-ID=`) {
			t.Errorf("pathways list different variants:\n%s", out)
		}
	})
}

package bench

import (
	"strings"
	"testing"
)

func TestLastPart(t *testing.T) {
	old := `#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:4
#EXT-X-MAP:URI="init0.mp4"
#EXT-X-PART:DURATION=0.30000,URI="part40.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.30000,URI="part41.m4s"
#EXTINF:0.60000,
seg4.m4s
`
	back := `#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init1.mp4"
`
	for _, tc := range []struct {
		name, text string
		want       int64
	}{
		{"the old session", old + `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part42.m4s"` + "\n", 41},
		{"new session, hint only", old + back + `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part42.m4s"` + "\n", 41},
		{"new session's first part", old + back +
			`#EXT-X-PART:DURATION=0.30000,URI="part42.m4s",INDEPENDENT=YES` + "\n" +
			`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part43.m4s"` + "\n", 42},
		{"no parts", "#EXTM3U\n", -1},
	} {
		if got := lastPart(tc.text); got != tc.want {
			t.Errorf("%s: lastPart %d, want %d", tc.name, got, tc.want)
		}
	}
	// What Reconnect looks at: the text after the last discontinuity.
	text := old + back + `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part42.m4s"` + "\n"
	if got := lastPart(text[strings.LastIndex(text, "#EXT-X-DISCONTINUITY\n"):]); got != -1 {
		t.Errorf("after the discontinuity, before a new part: %d, want -1", got)
	}
}

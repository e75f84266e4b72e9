package bench

import (
	"slices"
	"testing"
)

func TestPlaylistURIs(t *testing.T) {
	pl := []byte("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n" +
		"#EXT-X-MAP:URI=\"init3.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-12-03T11:45:01.500Z\n#EXTINF:2.00000,\nseg10.m4s\n" +
		"#EXTINF:2.00000,\nseg11.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init4.mp4\"\n#EXTINF:1.50000,\r\nseg12.m4s\r\n#EXT-X-ENDLIST\n")
	got := playlistURIs(pl, nil)
	want := []string{"init3.mp4", "seg10.m4s", "seg11.m4s", "init4.mp4", "seg12.m4s"}
	if !slices.Equal(got, want) {
		t.Fatalf("playlistURIs = %q, want %q", got, want)
	}
}

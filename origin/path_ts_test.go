package origin

import "testing"

// TestValidFileTS: the legacy HLS rendition's names are stream files;
// look-alikes are not.
func TestValidFileTS(t *testing.T) {
	for _, tt := range []struct {
		file string
		ok   bool
	}{
		{"stream_ts.m3u8", true},
		{"index_ts.m3u8", true},
		{"seg0.ts", true},
		{"seg123456.ts", true},
		{"seg.ts", true}, // the packager answers 404
		{"seg1..ts", false},
		{"seg1%2f.ts", false},
		{"seg" + string(make([]byte, 49)) + ".ts", false},
		{"part1.ts", false},
		{"init0.ts", false},
		{"stream_ts.m3u", false},
		{"other_ts.m3u8", false},
		{"seg1.tsx", false},
	} {
		if got := validFile(tt.file); got != tt.ok {
			t.Errorf("validFile(%q) = %v, want %v", tt.file, got, tt.ok)
		}
	}
	if name, file, ok := parseLivePath("/live/shop/seg7.ts"); !ok || name != "shop" || file != "seg7.ts" {
		t.Errorf("parseLivePath: %q %q %v", name, file, ok)
	}
}

package origin

import "testing"

// TestParseLivePathFiles: the router takes exactly the names the packager
// writes (see hlsname), of both renditions; look-alikes are a 404 before the
// packager is asked.
func TestParseLivePathFiles(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		file string
		ok   bool
	}{
		{"index.m3u8", true},
		{"stream.m3u8", true},
		{"init0.mp4", true},
		{"seg12.m4s", true},
		{"part40.m4s", true},
		{"stream_ts.m3u8", true},
		{"index_ts.m3u8", true},
		{"seg0.ts", true},
		{"seg123456.ts", true},
		{"seg.ts", false},
		{"seg-1.ts", false},
		{"part12.3.m4s", false},
		{"seg1..ts", false},
		{"seg1%2f.ts", false},
		{"seg" + string(make([]byte, 49)) + ".ts", false},
		{"part1.ts", false},
		{"init0.ts", false},
		{"stream_ts.m3u", false},
		{"other_ts.m3u8", false},
		{"seg1.tsx", false},
	} {
		name, file, ok := parseLivePath("/live/shop/" + tt.file)
		if ok != tt.ok || (ok && (name != "shop" || file != tt.file)) {
			t.Errorf("parseLivePath(/live/shop/%q) = %q %q %v, want ok %v", tt.file, name, file, ok, tt.ok)
		}
	}
}

package bench

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestParsePlaylist(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []partPos
		lastSeg int64
		init    string
		wantErr bool
	}{
		{
			name: "parts of complete and open segments",
			in: "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"init1.mp4\"\n" +
				"#EXT-X-PART:DURATION=0.3,URI=\"part40.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.3,URI=\"part41.m4s\"\n#EXTINF:0.6,\nseg7.m4s\n" +
				"#EXT-X-PART:DURATION=0.3,URI=\"part42.m4s\",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part43.m4s\"\n",
			want:    []partPos{{n: 40, msn: 7, idx: 0}, {n: 41, msn: 7, idx: 1}, {n: 42, msn: 8, idx: 0}},
			lastSeg: 7,
			init:    "init1.mp4",
		},
		{
			name:    "open segment only",
			in:      "#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-PART:DURATION=0.3,URI=\"part9.m4s\"\n",
			want:    []partPos{{n: 9, msn: 3, idx: 0}},
			lastSeg: -1,
		},
		{name: "no parts", in: "#EXTM3U\n#EXTINF:2,\nseg1.m4s\n", wantErr: true},
		{name: "bad part URI", in: "#EXT-X-PART:DURATION=0.3,URI=\"partX.m4s\"\n", wantErr: true},
		{name: "bad segment URI", in: "seg1x.m4s\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, err := parsePlaylistInto([]byte(tt.in), make([]partPos, 5))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, got %+v", pl)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pl.parts) != len(tt.want) {
				t.Fatalf("parts %+v, want %+v", pl.parts, tt.want)
			}
			for i := range tt.want {
				if pl.parts[i] != tt.want[i] {
					t.Errorf("part %d: %+v, want %+v", i, pl.parts[i], tt.want[i])
				}
			}
			if pl.lastSeg != tt.lastSeg || pl.initURI != tt.init {
				t.Errorf("lastSeg %d init %q, want %d %q", pl.lastSeg, pl.initURI, tt.lastSeg, tt.init)
			}
		})
	}
}

// TestPipeFetcher checks that the pipelined playlist and part requests are
// both answered on one connection, in order, and that an error status is
// reported and the connection replaced.
func TestPipeFetcher(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		switch r.URL.Path {
		case "/live/s/stream.m3u8":
			_, _ = w.Write([]byte("#EXTM3U " + r.URL.RawQuery))
		case "/live/s/part5.m4s":
			_, _ = w.Write(make([]byte, 150<<10))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	base := srv.URL + "/live/s/"
	f, err := newPipeFetcher(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var pl []byte
	for range 3 {
		n, err := f.fetchPair(ctx, base+"stream.m3u8?_HLS_msn=2&_HLS_part=1", &pl, base+"part5.m4s")
		if err != nil {
			t.Fatal(err)
		}
		if n != 150<<10 || string(pl) != "#EXTM3U _HLS_msn=2&_HLS_part=1" {
			t.Fatalf("part %d bytes, playlist %q", n, pl)
		}
	}
	if n := count(); n != 1 {
		t.Errorf("%d connections for 3 pipelined pairs, want 1", n)
	}
	if _, err := f.fetchPair(ctx, base+"stream.m3u8", &pl, base+"part6.m4s"); !errors.Is(err, errStatus) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing part: err %v, want a 404 status error", err)
	}
	if n, err := f.fetch(ctx, base+"part5.m4s", nil); err != nil || n != 150<<10 {
		t.Fatalf("after an error: %d bytes, %v", n, err)
	}
	if n := count(); n != 2 {
		t.Errorf("%d connections, want a new one after the error", n)
	}
	if _, err := newPipeFetcher("https://example.com/"); err == nil {
		t.Error("https base accepted")
	}
}

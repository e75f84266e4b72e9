package hlsname

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	maxInt := strconv.FormatInt(math.MaxInt64, 10)
	tests := []struct {
		file string
		want Name // zero: refused
	}{
		{"index.m3u8", Name{Kind: KindMultivariant}},
		{"stream.m3u8", Name{Kind: KindMedia}},
		{"index_ts.m3u8", Name{Kind: KindTSMultivariant}},
		{"stream_ts.m3u8", Name{Kind: KindTSMedia}},
		{"init0.mp4", Name{Kind: KindInit, N: 0}},
		{"init7.mp4", Name{Kind: KindInit, N: 7}},
		{"seg0.m4s", Name{Kind: KindSegment, N: 0}},
		{"seg12.m4s", Name{Kind: KindSegment, N: 12}},
		{"part0.m4s", Name{Kind: KindPart, N: 0}},
		{"part123.m4s", Name{Kind: KindPart, N: 123}},
		{"seg0.ts", Name{Kind: KindTSSegment, N: 0}},
		{"seg123456.ts", Name{Kind: KindTSSegment, N: 123456}},
		{"poster.jpg", Name{Kind: KindPoster}},
		{"poster1.jpg", Name{}},
		{"Poster.jpg", Name{}},
		{"seg" + maxInt + ".m4s", Name{Kind: KindSegment, N: math.MaxInt64}},
		{"part" + maxInt + ".m4s", Name{Kind: KindPart, N: math.MaxInt64}},
		// Leading zeros were always accepted (strconv.ParseInt); kept so that
		// no URL answered before is refused now.
		{"seg012.m4s", Name{Kind: KindSegment, N: 12}},
		{"part00.m4s", Name{Kind: KindPart, N: 0}},
		{"seg" + strings.Repeat("0", 47) + "1.m4s", Name{Kind: KindSegment, N: 1}},

		// Numbers: missing, signed, negative, overflowing, too long, not
		// decimal.
		{"seg.m4s", Name{}},
		{"seg.ts", Name{}},
		{"part.m4s", Name{}},
		{"init.mp4", Name{}},
		{"seg-1.m4s", Name{}},
		{"seg-0.m4s", Name{}},
		{"part-1.m4s", Name{}},
		{"seg+1.m4s", Name{}},
		{"seg 1.m4s", Name{}},
		{"seg9223372036854775808.m4s", Name{}}, // MaxInt64+1
		{"part99999999999999999999.m4s", Name{}},
		{"seg" + strings.Repeat("0", 48) + "1.m4s", Name{}},
		{"seg" + strings.Repeat("1", 49) + ".m4s", Name{}},
		{"seg0x1.m4s", Name{}},
		{"seg1_0.m4s", Name{}},
		{"segx.ts", Name{}},
		{"partx.m4s", Name{}},
		{"part12.3.m4s", Name{}},
		{"seg1.5.ts", Name{}},
		{"seg١.m4s", Name{}}, // a non-ASCII digit

		// Unknown prefixes, suffixes and playlists.
		{"", Name{}},
		{"seg1.mp4", Name{}},
		{"init0.m4s", Name{}},
		{"init0.ts", Name{}},
		{"part1.ts", Name{}},
		{"seg1.tsx", Name{}},
		{"seg1.m4s.ts", Name{}},
		{"Seg1.m4s", Name{}},
		{"index.m3u", Name{}},
		{"index.M3U8", Name{}},
		{"other_ts.m3u8", Name{}},
		{"index_ts.m3u8x", Name{}},
		{"passwd", Name{}},

		// Paths: nothing but a bare file name.
		{"../index.m3u8", Name{}},
		{"seg1/../x.m4s", Name{}},
		{"seg..1.m4s", Name{}},
		{"seg1%2f.ts", Name{}},
		{"a/index.m3u8", Name{}},
		{"index.m3u8/", Name{}},
		{"/seg1.m4s", Name{}},
		{"index.m3u8\x00", Name{}},
		{"seg1\x00.m4s", Name{}},

		// Variants: their name, a dot, a source name of a kind variants have.
		{"480p.stream.m3u8", Name{Kind: KindMedia, Variant: "480p"}},
		{"480p.init3.mp4", Name{Kind: KindInit, N: 3, Variant: "480p"}},
		{"480p.seg12.m4s", Name{Kind: KindSegment, N: 12, Variant: "480p"}},
		{"low_1-x.part40.m4s", Name{Kind: KindPart, N: 40, Variant: "low_1-x"}},
		{"0123456789abcdef.part1.m4s", Name{Kind: KindPart, N: 1, Variant: "0123456789abcdef"}},
		{"0123456789abcdefg.part1.m4s", Name{}}, // 17 characters
		{"480P.stream.m3u8", Name{}},
		{"_480p.stream.m3u8", Name{}},
		{"-480p.stream.m3u8", Name{}},
		{".stream.m3u8", Name{}},
		{"480p.index.m3u8", Name{}},
		{"480p.stream_ts.m3u8", Name{}},
		{"480p.seg1.ts", Name{}},
		{"480p.480p.stream.m3u8", Name{}},
		{"480p.seg-1.m4s", Name{}},
		{"480p.", Name{}},
		{"48 0p.stream.m3u8", Name{}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.file)
		if tt.want == (Name{}) {
			if !errors.Is(err, ErrInvalid) || got != (Name{}) {
				t.Errorf("Parse(%q) = %+v, %v; want an ErrInvalid", tt.file, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.file, got, err, tt.want)
		}
	}
}

// TestRoundTrip formats every name form and parses it back.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, k := range []Kind{KindMultivariant, KindMedia, KindTSMultivariant, KindTSMedia} {
		n := Name{Kind: k}
		if got, err := Parse(n.String()); err != nil || got != n || !k.IsPlaylist() {
			t.Errorf("%v: Parse(%q) = %+v, %v", k, n.String(), got, err)
		}
	}
	formats := []struct {
		kind   Kind
		format func(int64) string
		want   string // for 12
	}{
		{KindInit, Init, "init12.mp4"},
		{KindSegment, Segment, "seg12.m4s"},
		{KindPart, Part, "part12.m4s"},
		{KindTSSegment, TSSegment, "seg12.ts"},
	}
	for _, f := range formats {
		if got := f.format(12); got != f.want {
			t.Errorf("%v: format(12) = %q, want %q", f.kind, got, f.want)
		}
		if f.kind.IsPlaylist() {
			t.Errorf("%v is a playlist", f.kind)
		}
		for _, n := range []int64{0, 1, 9, 10, 12, 999, 1 << 32, math.MaxInt64} {
			name := f.format(n)
			if got, err := Parse(name); err != nil || got != (Name{Kind: f.kind, N: n}) {
				t.Errorf("Parse(%q) = %+v, %v; want %v %d", name, got, err, f.kind, n)
			}
			if s := (Name{Kind: f.kind, N: n}).String(); s != name {
				t.Errorf("Name{%v, %d}.String() = %q, want %q", f.kind, n, s, name)
			}
		}
	}
	if n := (Name{Kind: KindPoster}); n.String() != Poster || n.Kind.IsPlaylist() || n.Kind.IsTS() {
		t.Errorf("the poster: %q, playlist %v, TS %v", n.String(), n.Kind.IsPlaylist(), n.Kind.IsTS())
	}
	// The TS rendition's files, and only those, are TS.
	for k := KindMultivariant; k <= KindTSSegment; k++ {
		want := k == KindTSMultivariant || k == KindTSMedia || k == KindTSSegment
		if k.IsTS() != want {
			t.Errorf("%v.IsTS() = %v", k, k.IsTS())
		}
	}
}

func TestVariantNames(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ got, want string }{
		{VariantMedia(""), "stream.m3u8"},
		{VariantMedia("480p"), "480p.stream.m3u8"},
		{VariantInit("480p", 7), "480p.init7.mp4"},
		{VariantSegment("480p", 12), "480p.seg12.m4s"},
		{VariantPart("480p", 40), "480p.part40.m4s"},
		{VariantPart("", 40), "part40.m4s"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	for _, tt := range []struct {
		v  string
		ok bool
	}{
		{"480p", true}, {"a", true}, {"0", true}, {"hd_2-b", true}, {"0123456789abcdef", true},
		{"", false}, {"0123456789abcdefg", false}, {"_a", false}, {"-a", false}, {"A", false},
		{"a.b", false}, {"a/b", false}, {"a b", false}, {"é", false},
	} {
		if ValidVariant(tt.v) != tt.ok || (CheckVariant(tt.v) == nil) != tt.ok {
			t.Errorf("ValidVariant(%q) = %v, want %v", tt.v, ValidVariant(tt.v), tt.ok)
		}
		if !tt.ok && !errors.Is(CheckVariant(tt.v), ErrBadVariant) {
			t.Errorf("CheckVariant(%q) does not wrap ErrBadVariant", tt.v)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	for _, f := range []string{"stream.m3u8", "part123456.m4s", "seg42.ts", "480p.part123456.m4s"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = Parse(f) }); n != 0 {
			t.Errorf("Parse(%q): %v allocations, want 0: the router parses every request", f, n)
		}
	}
}

// FuzzParse: a name that parses is a bare file name of safe characters, and
// formatting what it parsed to gives a name that parses to the same file.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"index.m3u8", "stream.m3u8", "index_ts.m3u8", "stream_ts.m3u8",
		"init0.mp4", "seg12.m4s", "part123.m4s", "seg7.ts", "seg012.m4s",
		"seg-1.m4s", "seg9223372036854775808.m4s", "part12.3.m4s", "../index.m3u8",
		"seg1%2f.ts", "init.mp4", "480p.stream.m3u8", "480p.part7.m4s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || n != (Name{}) {
				t.Fatalf("Parse(%q) = %+v, %v", s, n, err)
			}
			return
		}
		if n.Kind == 0 || n.N < 0 || (n.Kind.IsPlaylist() && n.N != 0) {
			t.Fatalf("Parse(%q) = %+v", s, n)
		}
		if strings.ContainsAny(s, "/\\%\x00") || strings.Contains(s, "..") || s[0] == '.' {
			t.Fatalf("Parse(%q) accepted a path", s)
		}
		again, err := Parse(n.String())
		if err != nil || again != n {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v, %v", s, n, n.String(), again, err)
		}
		// Only leading zeros make a name differ from its canonical form.
		if c := n.String(); c != s {
			if n.Variant != "" {
				s, c = s[len(n.Variant)+1:], c[len(n.Variant)+1:]
			}
			prefix := numbered[n.Kind].prefix
			extra := len(s) - len(c)
			if extra <= 0 || strings.Trim(s[len(prefix):len(prefix)+extra], "0") != "" || s[:len(prefix)]+s[len(prefix)+extra:] != c {
				t.Fatalf("Parse(%q) is %q: they differ beyond leading zeros", s, c)
			}
		}
	})
}

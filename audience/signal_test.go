package audience

import (
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	const v = `"viewer":"abcdefghijklmnop0123"`
	tests := []struct {
		name  string
		body  string
		want  Signal // of a good single signal
		field string // of a refusal; "-" for a refusal of the whole body
	}{
		{"heartbeat", `{` + v + `,"kind":"heartbeat"}`, Signal{Kind: KindHeartbeat}, ""},
		{"impression", `{` + v + `,"kind":"impression","cue":"sneaker-42"}`, Signal{Kind: KindImpression, Cue: "sneaker-42"}, ""},
		{"click", `{` + v + `,"kind":"click","cue":"sneaker-42","sku":"SNK-42 WHT"}`, Signal{Kind: KindClick, Cue: "sneaker-42", SKU: "SNK-42 WHT"}, ""},
		{"reaction", `{` + v + `,"kind":"reaction"}`, Signal{Kind: KindReaction}, ""},
		{"vote", `{` + v + `,"kind":"vote","poll":"p1","option":1}`, Signal{Kind: KindVote, Poll: "p1", Option: 1}, ""},
		{"vote option 0", `{` + v + `,"kind":"vote","poll":"p1","option":0}`, Signal{Kind: KindVote, Poll: "p1"}, ""},

		{"no viewer", `{"kind":"heartbeat"}`, Signal{}, "viewer"},
		{"short viewer", `{"viewer":"abc","kind":"heartbeat"}`, Signal{}, "viewer"},
		{"viewer with a slash", `{"viewer":"abcdefghijklmnop/123","kind":"heartbeat"}`, Signal{}, "viewer"},
		{"viewer a number", `{"viewer":12345678901234567890,"kind":"heartbeat"}`, Signal{}, "viewer"},
		{"no kind", `{` + v + `}`, Signal{}, "kind"},
		{"unknown kind", `{` + v + `,"kind":"purchase"}`, Signal{}, "kind"},
		{"impression without cue", `{` + v + `,"kind":"impression"}`, Signal{}, "cue"},
		{"impression bad cue", `{` + v + `,"kind":"impression","cue":"a b"}`, Signal{}, "cue"},
		{"impression with sku", `{` + v + `,"kind":"impression","cue":"c","sku":"s"}`, Signal{}, "sku"},
		{"click without sku", `{` + v + `,"kind":"click","cue":"c"}`, Signal{}, "sku"},
		{"click sku with quote", `{` + v + `,"kind":"click","cue":"c","sku":"a\"b"}`, Signal{}, "sku"},
		{"click sku too long", `{` + v + `,"kind":"click","cue":"c","sku":"` + strings.Repeat("x", 129) + `"}`, Signal{}, "sku"},
		{"heartbeat with poll", `{` + v + `,"kind":"heartbeat","poll":"p"}`, Signal{}, "poll"},
		{"vote without poll", `{` + v + `,"kind":"vote","option":1}`, Signal{}, "poll"},
		{"vote without option", `{` + v + `,"kind":"vote","poll":"p"}`, Signal{}, "option"},
		{"vote negative option", `{` + v + `,"kind":"vote","poll":"p","option":-1}`, Signal{}, "option"},
		{"vote option a string", `{` + v + `,"kind":"vote","poll":"p","option":"1"}`, Signal{}, "option"},
		{"vote fractional option", `{` + v + `,"kind":"vote","poll":"p","option":1.5}`, Signal{}, "option"},
		{"unknown field", `{` + v + `,"kind":"heartbeat","x":1}`, Signal{}, "x"},
		{"not JSON", `hello`, Signal{}, "-"},
		{"trailing data", `{` + v + `,"kind":"heartbeat"} {}`, Signal{}, "-"},
		{"batch and single", `{` + v + `,"kind":"heartbeat","signals":[{"kind":"reaction"}]}`, Signal{}, "signals"},
		{"empty batch", `{` + v + `,"signals":[]}`, Signal{}, "kind"},
		{"batch bad member", `{` + v + `,"signals":[{"kind":"reaction"},{"kind":"vote","poll":"p"}]}`, Signal{}, "signals.1.option"},
		{"batch too long", `{` + v + `,"signals":[` + strings.Repeat(`{"kind":"reaction"},`, 10) + `{"kind":"reaction"}]}`, Signal{}, "signals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeRequest([]byte(tt.body), 10)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if len(req.Signals) != 1 || req.Signals[0] != tt.want {
					t.Fatalf("got %+v, want %+v", req.Signals, tt.want)
				}
				return
			}
			fe, ok := err.(*FieldError)
			if !ok {
				t.Fatalf("got %v (%T), want a FieldError", err, err)
			}
			want := tt.field
			if want == "-" {
				want = ""
			}
			if fe.Field != want {
				t.Fatalf("field %q (%v), want %q", fe.Field, fe, want)
			}
		})
	}
}

func TestDecodeBatch(t *testing.T) {
	req, err := DecodeRequest([]byte(`{"viewer":"abcdefghijklmnop0123","signals":[{"kind":"heartbeat"},{"kind":"reaction"},{"kind":"click","cue":"c1","sku":"S1"}]}`), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Signal{{Kind: KindHeartbeat}, {Kind: KindReaction}, {Kind: KindClick, Cue: "c1", SKU: "S1"}}
	if len(req.Signals) != len(want) {
		t.Fatalf("got %+v", req.Signals)
	}
	for i := range want {
		if req.Signals[i] != want[i] {
			t.Fatalf("signal %d: got %+v, want %+v", i, req.Signals[i], want[i])
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"viewer":"abcdefghijklmnop0123","kind":"vote","poll":"p1","option":1}`))
	f.Add([]byte(`{"viewer":"abcdefghijklmnop0123","signals":[{"kind":"reaction"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b, 10)
		if err == nil && (len(req.Signals) == 0 || len(req.Signals) > 10 || !validViewer(req.Viewer)) {
			t.Fatalf("accepted %q as %+v", b, req)
		}
	})
}

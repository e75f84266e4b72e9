package cues

import (
	"errors"
	"strings"
	"testing"
)

// cueWith is validCue with one product field's raw JSON string replaced.
func cueWith(t *testing.T, field, raw string) []byte {
	t.Helper()
	old := map[string]string{
		"title":    `"title":"Court Sneaker"`,
		"sku":      `"sku":"SNK-42"`,
		"badge":    `"badge":"NEW"`,
		"discount": `"discount":"-10%"`,
		"url":      `"url":"https://shop.example.com/p/42?ref=live&x=1"`,
		"amount":   `"amount":"89.90"`,
	}[field]
	if old == "" || !strings.Contains(validCue, old) {
		t.Fatalf("no field %s in validCue", field)
	}
	return []byte(strings.Replace(validCue, old, `"`+field+`":`+raw, 1))
}

// TestDecodeCueText: text that encoding/json would silently turn into
// U+FFFD, and characters that change how text displays without showing,
// are refused with the field named.
func TestDecodeCueText(t *testing.T) {
	for _, tc := range []struct {
		name, field, raw string
		want             string // in the message; "" means accepted
	}{
		{"plain", "title", `"Court Sneaker"`, ""},
		{"accents and CJK", "title", `"Été – 夏 スニーカー"`, ""},
		{"right-to-left script", "title", `"נעל ספורט"`, ""},
		{"emoji as a surrogate pair", "title", `"Sneaker \ud83d\udc5f"`, ""},
		{"emoji as UTF-8", "title", `"Sneaker 👟"`, ""},
		{"escaped backslash before u", "sku", `"A\\ud800"`, ""},
		{"U+FFFD sent as such", "title", `"\ufffd"`, ""},

		{"invalid UTF-8", "title", "\"Court \xff Sneaker\"", "valid UTF-8"},
		{"truncated UTF-8", "badge", "\"NEW\xe2\x82\"", "valid UTF-8"},
		{"overlong UTF-8", "sku", "\"\xc0\xafX\"", "valid UTF-8"},
		{"UTF-8 encoded surrogate", "title", "\"a\xed\xa0\x80b\"", "valid UTF-8"},
		{"lone high surrogate", "title", `"Court \ud800 Sneaker"`, `\ud800`},
		{"lone high surrogate at the end", "title", `"Court\uD83D"`, `\uD83D`},
		{"lone low surrogate", "badge", `"\udc5fNEW"`, `\udc5f`},
		{"two high surrogates", "title", `"\ud83d\ud83d\udc5f"`, `\ud83d`},
		{"high surrogate then escape", "discount", `"\ud83d\n"`, `\ud83d`},
		{"high surrogate then BMP escape", "sku", `"\ud83d\u0041"`, `\ud83d`},
		{"lone surrogate in a URL", "url", `"https://shop.example.com/\udfff"`, `\udfff`},

		{"right-to-left override", "title", "\"Sneaker \u202e99.91\"", "U+202E"},
		{"right-to-left override escaped", "amount", `"\u202e89.90"`, "U+202E"},
		{"left-to-right embedding", "title", "\"a\u202ab\"", "U+202A"},
		{"pop directional formatting", "badge", "\"NEW\u202c\"", "U+202C"},
		{"right-to-left isolate", "discount", "\"\u2067-10%\u2069\"", "U+2067"},
		{"first strong isolate", "title", "\"\u2068x\"", "U+2068"},
		{"right-to-left mark", "title", "\"a\u200fb\"", "U+200F"},
		{"left-to-right mark", "title", "\"a\u200eb\"", "U+200E"},
		{"arabic letter mark", "title", "\"a\u061cb\"", "U+061C"},
		{"zero width space", "sku", "\"SNK\u200b42\"", "U+200B"},
		{"zero width non-joiner between ASCII letters", "title", "\"a\u200cb\"", "U+200C"},
		{"zero width joiner between ASCII letters", "title", "\"a\u200db\"", "U+200D"},
		{"zero width joiner at the end", "title", "\"\U0001F468\u200d\"", "U+200D"},
		{"zero width joiner before a format character", "title", "\"\U0001F468\u200d\u200b\"", "U+200D"},
		{"emoji family sequence", "title", "\"Family pack \U0001F468\u200d\U0001F469\u200d\U0001F467\"", ""},
		{"persian word with a non-joiner", "title", "\"\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645\"", ""},
		{"word joiner", "title", "\"a\u2060b\"", "U+2060"},
		{"invisible plus", "title", "\"a\u2064b\"", "U+2064"},
		{"byte order mark", "title", "\"\ufeffCourt\"", "U+FEFF"},
		{"byte order mark escaped", "badge", `"\uFEFFNEW"`, "U+FEFF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCue(cueWith(t, tc.field, tc.raw))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.Product == nil {
					t.Fatal("no product")
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("accepted or not a FieldError: %v (%+v)", err, c)
			}
			wantField := "product." + tc.field
			if tc.field == "amount" {
				wantField = "product.price.amount"
			}
			if fe.Field != wantField || !strings.Contains(fe.Message, tc.want) {
				t.Fatalf("error %q: %q, want field %q with %q", fe.Field, fe.Message, wantField, tc.want)
			}
		})
	}
}

// TestDecodeScheduleText: the schedule file goes through the same checks,
// its entries named by index.
func TestDecodeScheduleText(t *testing.T) {
	body := `[` + strings.Replace(validCue, `"title":"Court Sneaker"`, `"title":"\ud800"`, 1) + `]`
	_, err := DecodeSchedule([]byte(body))
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.HasSuffix(fe.Field, "product.title") {
		t.Fatalf("schedule with a lone surrogate: %v", err)
	}
}

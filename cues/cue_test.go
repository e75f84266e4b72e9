package cues

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// validCue is a cue with every field set; the table below breaks one field
// at a time.
const validCue = `{"v":1,"id":"sneaker-42","type":"product","product":{"sku":"SNK-42","title":"Court Sneaker",` +
	`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/a.jpg",` +
	`"url":"https://shop.example.com/p/42?ref=live&x=1","badge":"NEW","discount":"-10%"},"at":"now","duration_ms":30000}`

// mutate returns validCue with the value at a dotted path replaced by v
// (a JSON value), or removed when v is "".
func mutate(t *testing.T, path, v string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(validCue), &m); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	obj := m
	for _, k := range keys[:len(keys)-1] {
		obj = obj[k].(map[string]any)
	}
	last := keys[len(keys)-1]
	if v == "" {
		delete(obj, last)
	} else {
		obj[last] = json.RawMessage(v)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeCueFieldErrors(t *testing.T) {
	cases := []struct {
		name  string
		body  string // a raw body, or
		path  string // a mutation of validCue
		value string
		field string
	}{
		{name: "empty body", body: "", field: ""},
		{name: "syntax", body: `{"v":1,`, field: ""},
		{name: "not an object", body: `[1]`, field: ""},
		{name: "trailing data", body: validCue + ` {}`, field: ""},
		{name: "trailing garbage", body: validCue + `x`, field: ""},
		{name: "unknown top field", path: "colour", value: `"red"`, field: "colour"},
		{name: "unknown product field", path: "product.colour", value: `"red"`, field: "product.colour"},
		{name: "unknown price field", path: "product.price.tax", value: `"1"`, field: "product.price.tax"},
		{name: "repeated field", body: `{"v":1,"v":1}`, field: "v"},
		{name: "v missing", path: "v", value: "", field: "v"},
		{name: "v 2", path: "v", value: "2", field: "v"},
		{name: "v string", path: "v", value: `"1"`, field: "v"},
		{name: "v float", path: "v", value: `1.0`, field: "v"},
		{name: "id bad chars", path: "id", value: `"a b"`, field: "id"},
		{name: "id too long", path: "id", value: `"` + strings.Repeat("a", 65) + `"`, field: "id"},
		{name: "id empty", path: "id", value: `""`, field: "id"},
		{name: "id number", path: "id", value: `7`, field: "id"},
		{name: "type missing", path: "type", value: "", field: "type"},
		{name: "type unknown", path: "type", value: `"quiz"`, field: "type"},
		{name: "type poll with a product", path: "type", value: `"poll"`, field: "product"},
		{name: "product missing", path: "product", value: "", field: "product"},
		{name: "product not object", path: "product", value: `"x"`, field: "product"},
		{name: "sku missing", path: "product.sku", value: "", field: "product.sku"},
		{name: "sku quote", path: "product.sku", value: `"a\"b"`, field: "product.sku"},
		{name: "sku too long", path: "product.sku", value: `"` + strings.Repeat("s", 129) + `"`, field: "product.sku"},
		{name: "title missing", path: "product.title", value: "", field: "product.title"},
		{name: "title newline", path: "product.title", value: `"a\nb"`, field: "product.title"},
		{name: "title CR", path: "product.title", value: `"a\rb"`, field: "product.title"},
		{name: "title blank", path: "product.title", value: `"   "`, field: "product.title"},
		{name: "title too long", path: "product.title", value: `"` + strings.Repeat("é", 257) + `"`, field: "product.title"},
		{name: "price missing", path: "product.price", value: "", field: "product.price.amount"},
		{name: "amount number", path: "product.price.amount", value: `19.99`, field: "product.price.amount"},
		{name: "amount comma", path: "product.price.amount", value: `"19,99"`, field: "product.price.amount"},
		{name: "amount negative", path: "product.price.amount", value: `"-1.00"`, field: "product.price.amount"},
		{name: "amount exponent", path: "product.price.amount", value: `"1e3"`, field: "product.price.amount"},
		{name: "amount leading zero", path: "product.price.amount", value: `"019.99"`, field: "product.price.amount"},
		{name: "amount 5 decimals", path: "product.price.amount", value: `"1.00001"`, field: "product.price.amount"},
		{name: "currency lower", path: "product.price.currency", value: `"eur"`, field: "product.price.currency"},
		{name: "currency long", path: "product.price.currency", value: `"EURO"`, field: "product.price.currency"},
		{name: "currency missing", path: "product.price.currency", value: "", field: "product.price.currency"},
		{name: "image relative", path: "product.image_url", value: `"/a.jpg"`, field: "product.image_url"},
		{name: "image ftp", path: "product.image_url", value: `"ftp://x.example/a.jpg"`, field: "product.image_url"},
		{name: "image quote", path: "product.image_url", value: `"https://x.example/a\".jpg"`, field: "product.image_url"},
		{name: "image userinfo", path: "product.image_url", value: `"https://u:p@x.example/a.jpg"`, field: "product.image_url"},
		{name: "image missing", path: "product.image_url", value: "", field: "product.image_url"},
		{name: "url javascript", path: "product.url", value: `"javascript:alert(1)"`, field: "product.url"},
		{name: "url no host", path: "product.url", value: `"https:///p"`, field: "product.url"},
		{name: "url space", path: "product.url", value: `"https://x.example/a b"`, field: "product.url"},
		{name: "badge too long", path: "product.badge", value: `"` + strings.Repeat("b", 33) + `"`, field: "product.badge"},
		{name: "badge number", path: "product.badge", value: `1`, field: "product.badge"},
		{name: "discount control", path: "product.discount", value: `"\u0007"`, field: "product.discount"},
		{name: "at word", path: "at", value: `"later"`, field: "at"},
		{name: "at no zone", path: "at", value: `"2025-06-01T18:00:00"`, field: "at"},
		{name: "at negative", path: "at", value: `-5`, field: "at"},
		{name: "at fraction", path: "at", value: `1.5`, field: "at"},
		{name: "at object", path: "at", value: `{}`, field: "at"},
		{name: "duration zero", path: "duration_ms", value: `0`, field: "duration_ms"},
		{name: "duration negative", path: "duration_ms", value: `-1`, field: "duration_ms"},
		{name: "duration fraction", path: "duration_ms", value: `1.5`, field: "duration_ms"},
		{name: "duration string", path: "duration_ms", value: `"10"`, field: "duration_ms"},
		{name: "duration too long", path: "duration_ms", value: `43200001`, field: "duration_ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.path != "" {
				body = mutate(t, tc.path, tc.value)
			}
			_, err := DecodeCue([]byte(body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeCue(%s) = %v, want a FieldError", body, err)
			}
			if fe.Field != tc.field {
				t.Fatalf("field = %q (%s), want %q", fe.Field, fe.Message, tc.field)
			}
			if fe.Message == "" {
				t.Fatal("empty message")
			}
			var out map[string]string
			b, _ := json.Marshal(fe)
			if err := json.Unmarshal(b, &out); err != nil || out["error"] != "invalid cue" || out["field"] != tc.field || out["message"] != fe.Message {
				t.Fatalf("JSON rendering %s", b)
			}
		})
	}
}

func TestDecodeCueValid(t *testing.T) {
	cases := []struct {
		name string
		body string
		want func(*Cue) bool
	}{
		{"full", validCue, func(c *Cue) bool {
			return c.ID == "sneaker-42" && c.Product.Price.Amount == "89.90" && c.At.Kind == AtNow && c.DurationMs == 30000
		}},
		{"at absent is now", mutate(t, "at", ""), func(c *Cue) bool { return c.At.Kind == AtNow }},
		{"at null is now", mutate(t, "at", "null"), func(c *Cue) bool { return c.At.Kind == AtNow }},
		{"at media", mutate(t, "at", "12000"), func(c *Cue) bool { return c.At.Kind == AtMedia && c.At.Media == 12*time.Second }},
		{"at wall", mutate(t, "at", `"2025-06-01T18:00:00.250+02:00"`), func(c *Cue) bool {
			return c.At.Kind == AtWall && c.At.Wall.Equal(time.Date(2025, 6, 1, 16, 0, 0, 250e6, time.UTC))
		}},
		{"no id", mutate(t, "id", ""), func(c *Cue) bool { return c.ID == "" }},
		{"open-ended", mutate(t, "duration_ms", ""), func(c *Cue) bool { return c.DurationMs == 0 }},
		{"no badge", mutate(t, "product.badge", "null"), func(c *Cue) bool { return c.Product.Badge == "" }},
		{"unicode title", mutate(t, "product.title", `"Café crème ☕"`), func(c *Cue) bool { return c.Product.Title == "Café crème ☕" }},
		{"whitespace around", " \n" + validCue + "\n ", func(c *Cue) bool { return c.ID == "sneaker-42" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCue([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(c) {
				t.Fatalf("decoded %+v", c)
			}
			// The API's JSON of the cue decodes to the same cue.
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := DecodeCue(b)
			if err != nil {
				t.Fatalf("re-decode %s: %v", b, err)
			}
			b2, _ := json.Marshal(c2)
			if string(b) != string(b2) {
				t.Fatalf("round trip:\n%s\n%s", b, b2)
			}
		})
	}
}

func TestWire(t *testing.T) {
	c, err := DecodeCue([]byte(validCue))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Wire()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"id":"sneaker-42","type":"product","product":{"sku":"SNK-42","title":"Court Sneaker",` +
		`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/a.jpg",` +
		`"url":"https://shop.example.com/p/42?ref=live&x=1","badge":"NEW","discount":"-10%"},"duration_ms":30000}`
	if string(w) != want {
		t.Fatalf("Wire\n got %s\nwant %s", w, want)
	}
	e, _ := EndWire("sneaker-42")
	if string(e) != `{"v":1,"id":"sneaker-42","end":true}` {
		t.Fatalf("EndWire %s", e)
	}
}

func exampleCue(t testing.TB) *Cue {
	t.Helper()
	b, err := os.ReadFile("../testdata/cues_example.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCue(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

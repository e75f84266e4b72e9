package cues

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bogem/id3v2/v2"
)

const (
	validPoll = `{"v":1,"id":"poll-1","type":"poll","poll":{"question":"Which colour next?",` +
		`"options":["Red","Blue","Green"]},"duration_ms":20000}`
	validDeal = `{"v":1,"id":"deal-1","type":"deal","deal":{"product":{"sku":"SNK-42","title":"Court Sneaker",` +
		`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/a.jpg",` +
		`"url":"https://shop.example.com/p/42"},"price":{"amount":"59.90","currency":"EUR"},"units":25},"duration_ms":10000}`
	validUpdate = `{"v":1,"id":"sneaker-42b","type":"product","replaces":"sneaker-42","product":{"sku":"SNK-42",` +
		`"title":"Court Sneaker","price":{"amount":"79.90","currency":"EUR"},"image_url":"https://cdn.example.com/a.jpg",` +
		`"url":"https://shop.example.com/p/42","badge":"Only 3 left"}}`
	validResult = `{"v":1,"id":"poll-1-result","type":"poll_result","poll_result":{"poll":"poll-1",` +
		`"question":"Which colour next?","options":["Red","Blue"],"counts":[3,0]},"duration_ms":10000}`
)

// edit returns body with the value at a dotted path replaced by v (a JSON
// value), or removed when v is "".
func edit(t *testing.T, body, path, v string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	obj := m
	for _, k := range keys[:len(keys)-1] {
		obj = obj[k].(map[string]any)
	}
	if last := keys[len(keys)-1]; v == "" {
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

func TestDecodeMomentFieldErrors(t *testing.T) {
	cases := []struct {
		name, body, path, value, field string
	}{
		{"poll without poll", validPoll, "poll", "", "poll"},
		{"poll with a product", validPoll, "product", `{"sku":"a"}`, "product"},
		{"poll question missing", validPoll, "poll.question", "", "poll.question"},
		{"poll question quote", validPoll, "poll.question", `"a\"b"`, "poll.question"},
		{"poll question too long", validPoll, "poll.question", `"` + strings.Repeat("q", 257) + `"`, "poll.question"},
		{"poll one option", validPoll, "poll.options", `["Red"]`, "poll.options"},
		{"poll five options", validPoll, "poll.options", `["a","b","c","d","e"]`, "poll.options"},
		{"poll options not array", validPoll, "poll.options", `"Red"`, "poll.options"},
		{"poll option number", validPoll, "poll.options", `["Red",2]`, "poll.options[1]"},
		{"poll option empty", validPoll, "poll.options", `["Red",""]`, "poll.options[1]"},
		{"poll option repeated", validPoll, "poll.options", `["Red","Red"]`, "poll.options[1]"},
		{"poll option too long", validPoll, "poll.options", `["Red","` + strings.Repeat("o", 65) + `"]`, "poll.options[1]"},
		{"poll unknown field", validPoll, "poll.answer", `"Red"`, "poll.answer"},
		{"poll no duration", validPoll, "duration_ms", "", "duration_ms"},
		{"poll replaces", validPoll, "replaces", `"x"`, "replaces"},
		{"deal without deal", validDeal, "deal", "", "deal"},
		{"deal product missing", validDeal, "deal.product", "", "deal.product.sku"},
		{"deal product sku missing", validDeal, "deal.product.sku", "", "deal.product.sku"},
		{"deal price missing", validDeal, "deal.price", "", "deal.price.amount"},
		{"deal price number", validDeal, "deal.price.amount", `59.9`, "deal.price.amount"},
		{"deal price other currency", validDeal, "deal.price.currency", `"USD"`, "deal.price.currency"},
		{"deal units zero", validDeal, "deal.units", `0`, "deal.units"},
		{"deal units fraction", validDeal, "deal.units", `2.5`, "deal.units"},
		{"deal units string", validDeal, "deal.units", `"3"`, "deal.units"},
		{"deal unknown field", validDeal, "deal.ends", `1`, "deal.ends"},
		{"deal no duration", validDeal, "duration_ms", "", "duration_ms"},
		{"update replaces itself", validUpdate, "replaces", `"sneaker-42b"`, "replaces"},
		{"update replaces bad id", validUpdate, "replaces", `"a b"`, "replaces"},
		{"update replaces number", validUpdate, "replaces", `42`, "replaces"},
		{"update at a media time", validUpdate, "at", `12000`, "at"},
		{"result posted", validResult, "", "", "type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.path != "" {
				body = edit(t, body, tc.path, tc.value)
			}
			_, err := DecodeCue([]byte(body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeCue(%s) = %v, want a FieldError", body, err)
			}
			if fe.Field != tc.field || fe.Message == "" {
				t.Fatalf("field = %q (%s), want %q", fe.Field, fe.Message, tc.field)
			}
		})
	}
}

// TestMomentWire: what players receive of each new type, byte for byte.
func TestMomentWire(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"poll", validPoll, `{"v":1,"id":"poll-1","type":"poll","poll":{"question":"Which colour next?","options":["Red","Blue","Green"]},"duration_ms":20000}`},
		{"deal", validDeal, `{"v":1,"id":"deal-1","type":"deal","deal":{"product":{"sku":"SNK-42","title":"Court Sneaker","price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/a.jpg","url":"https://shop.example.com/p/42"},"price":{"amount":"59.90","currency":"EUR"},"units":25},"duration_ms":10000}`},
		{"update", validUpdate, `{"v":1,"id":"sneaker-42b","type":"product","replaces":"sneaker-42","product":{"sku":"SNK-42","title":"Court Sneaker","price":{"amount":"79.90","currency":"EUR"},"image_url":"https://cdn.example.com/a.jpg","url":"https://shop.example.com/p/42","badge":"Only 3 left"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCue([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			w, err := c.Wire()
			if err != nil {
				t.Fatal(err)
			}
			if string(w) != tc.want {
				t.Fatalf("Wire\n got %s\nwant %s", w, tc.want)
			}
			// The API's JSON of the cue decodes to the same cue.
			b, _ := json.Marshal(c)
			c2, err := DecodeCue(b)
			if err != nil {
				t.Fatalf("re-decode %s: %v", b, err)
			}
			if !sameCue(c, c2) {
				t.Fatalf("round trip changed the cue: %s", b)
			}
		})
	}
}

// resultCue is a poll result as the Service builds it (posting one is
// refused).
func resultCue(t *testing.T) *Cue {
	t.Helper()
	raw, err := oneValue([]byte(validResult))
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeCueValue(raw, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMomentCarriage reads each new type's three copies with parsers we
// did not write: the DATERANGE with hls-m3u8, the ID3 tag with id3v2, the
// emsg box with mp4ff.
func TestMomentCarriage(t *testing.T) {
	decode := func(body string) *Cue {
		c, err := DecodeCue([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name  string
		cue   *Cue
		class string
		attrs map[string]string
	}{
		{"poll", decode(validPoll), "com.shopcast.poll", map[string]string{"X-COM-SHOPCAST-QUESTION": `"Which colour next?"`}},
		{"poll result", resultCue(t), "com.shopcast.poll-result", map[string]string{"X-COM-SHOPCAST-POLL": `"poll-1"`}},
		{"deal", decode(validDeal), "com.shopcast.deal", map[string]string{
			"X-COM-SHOPCAST-SKU": `"SNK-42"`, "X-COM-SHOPCAST-PRICE": `"59.90"`, "X-COM-SHOPCAST-CURRENCY": `"EUR"`,
			"X-COM-SHOPCAST-UNITS": `25`, "X-COM-SHOPCAST-URL": `"https://shop.example.com/p/42"`,
		}},
		{"update", decode(validUpdate), "com.shopcast.product", map[string]string{
			"X-COM-SHOPCAST-PRICE": `"79.90"`, "X-COM-SHOPCAST-REPLACES": `"sneaker-42"`,
		}},
	}
	start := time.Date(2025, 6, 1, 18, 0, 12, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := tc.cue.Wire()
			if err != nil {
				t.Fatal(err)
			}
			end := time.Time{}
			if tc.cue.DurationMs > 0 {
				end = start.Add(time.Duration(tc.cue.DurationMs) * time.Millisecond)
			}
			dr := parseDateRange(t, dateRangeLine(t, tc.cue, start, end))
			if dr.ID != tc.cue.ID || dr.Class != tc.class || !dr.StartDate.Equal(start) {
				t.Fatalf("daterange %+v", dr)
			}
			got := xattrs(dr)
			for k, v := range tc.attrs {
				if got[k] != v {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
			js, err := hex.DecodeString(strings.TrimPrefix(got["X-COM-SHOPCAST-CUE"], "0x"))
			if err != nil || !bytes.Equal(js, wire) {
				t.Fatalf("X-COM-SHOPCAST-CUE is not the wire JSON: %s", js)
			}

			ev := cueEvent(t, tc.cue, 7)
			tag, err := id3v2.ParseReader(bytes.NewReader(ev.ID3), id3v2.Options{Parse: true})
			if err != nil {
				t.Fatal(err)
			}
			frames := tag.GetFrames("TXXX")
			if len(frames) != 1 {
				t.Fatalf("%d TXXX frames", len(frames))
			}
			if f := frames[0].(id3v2.UserDefinedTextFrame); f.Description != ID3Description || f.Value != string(wire) {
				t.Fatalf("ID3 frame %+v", f)
			}

			box, err := ev.StartBox(90000, 12*90000)
			if err != nil {
				t.Fatal(err)
			}
			e := parseEmsg(t, box)
			wantDur := uint32(tc.cue.DurationMs * 90)
			if tc.cue.DurationMs == 0 {
				wantDur = 0xFFFFFFFF // open-ended
			}
			if e.Version != 1 || e.ID != 14 || e.PresentationTime != 12*90000 || e.EventDuration != wantDur ||
				e.SchemeIDURI != "https://aomedia.org/emsg/ID3" || !bytes.Equal(e.MessageData, ev.ID3) {
				t.Fatalf("emsg %+v", e)
			}
		})
	}
}

// TestDocsMoments checks that the moment examples in docs/cues.md are the
// wire JSON the code produces for them.
func TestDocsMoments(t *testing.T) {
	doc, err := os.ReadFile("../docs/cues.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{validPoll, validDeal, validUpdate} {
		c, err := DecodeCue([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		w, _ := c.Wire()
		if !strings.Contains(string(doc), "\n"+string(w)+"\n") {
			t.Errorf("docs/cues.md lacks the %s example; it is now:\n%s", c.Type, w)
		}
	}
	res := &Cue{V: 1, ID: pollResultID("poll-1"), Type: TypePollResult, DurationMs: DefaultPollResultMs,
		PollResult: &PollResult{Poll: "poll-1", Question: "Which colour next?", Options: []string{"Red", "Blue", "Green"}, Counts: []int64{12, 30, 7}}}
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	w, _ := res.Wire()
	if !strings.Contains(string(doc), "\n"+string(w)+"\n") {
		t.Errorf("docs/cues.md lacks the poll_result example; it is now:\n%s", w)
	}
}

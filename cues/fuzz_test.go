package cues

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeCue: DecodeCue never panics, and every cue it accepts survives
// the trip through JSON, ID3, emsg and DATERANGE intact.
func FuzzDecodeCue(f *testing.F) {
	f.Add([]byte(validCue))
	if b, err := os.ReadFile("../testdata/cues_example.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"product","product":{"sku":"a","title":"b","price":{"amount":"0","currency":"USD"},"image_url":"http://x","url":"https://y/"},"at":0}`))
	f.Add([]byte(`{"v":1,"v":2}`))
	f.Add([]byte(`{"v":1,"at":"2025-01-01T00:00:00.123456789-07:00"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"product":{"price":{"amount":19.99}}}`))
	for _, m := range []string{validPoll, validDeal, validUpdate, validResult} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCue(data)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T is not a FieldError", err)
			}
			return
		}
		if c.ID == "" {
			c.ID = "fuzz"
			if c.Replaces == c.ID {
				c.ID = "fuzz-2"
			}
		}
		// The API's JSON decodes to the same cue.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := DecodeCue(b)
		if err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		b2, _ := json.Marshal(c2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip\n%s\n%s", b, b2)
		}
		// In-band: the ID3 in the emsg carries the wire JSON exactly.
		wire, err := c.Wire()
		if err != nil {
			t.Fatal(err)
		}
		ev := cueEvent(t, c, 1)
		if _, err := ev.StartBox(90000, 0); err != nil {
			t.Fatal(err)
		}
		tag, err := EncodeID3(ID3Description, wire)
		if err != nil {
			t.Fatal(err)
		}
		frames, err := DecodeID3(tag)
		if err != nil || len(frames) != 1 || frames[0].Value != string(wire) {
			t.Fatalf("ID3 %v %+v", err, frames)
		}
		if !bytes.Equal(ev.ID3, tag) {
			t.Fatal("the event's ID3 is not the tag of the wire JSON")
		}
		// In the playlist: one line, quoted strings closed, the hex intact.
		line := dateRangeLine(t, c, time.Unix(1e9, 0), time.Time{})
		if strings.ContainsAny(line, "\r\n") || strings.Count(line, `"`)%2 != 0 {
			t.Fatalf("bad line %q", line)
		}
		i := strings.LastIndex(line, "X-COM-SHOPCAST-CUE=0x")
		js, err := hex.DecodeString(line[i+len("X-COM-SHOPCAST-CUE=0x"):])
		if err != nil || !bytes.Equal(js, wire) {
			t.Fatalf("hex %v", err)
		}
	})
}

// FuzzID3RoundTrip: what EncodeID3 accepts, DecodeID3 reads back exactly.
func FuzzID3RoundTrip(f *testing.F) {
	f.Add("shopcast", []byte(`{"v":1,"id":"a","end":true}`))
	f.Add("", []byte(""))
	f.Add("é", []byte("☕"))
	f.Add("shopcast", bytes.Repeat([]byte("x"), 200))
	f.Fuzz(func(t *testing.T, desc string, value []byte) {
		tag, err := EncodeID3(desc, value)
		if err != nil {
			return
		}
		frames, err := DecodeID3(tag)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 1 || frames[0].Description != desc || frames[0].Value != string(value) {
			t.Fatalf("got %+v", frames)
		}
	})
}

// FuzzDecodeID3: the decoder never panics on any input.
func FuzzDecodeID3(f *testing.F) {
	good, _ := EncodeID3(ID3Description, []byte(`{"v":1}`))
	f.Add(good)
	f.Add([]byte("ID3\x03\x40\x00\x00\x00\x00\x20\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00TXXX\x00\x00\x00\x05\x00\x00\x01\xff\xfe\x00\x00"))
	f.Add([]byte("ID3\x04\x00\x40\x00\x00\x00\x10\x00\x00\x00\x06\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeID3(b)
	})
}

package cues

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestDocsExamples checks that the worked examples in docs/cues.md are what
// the code produces today.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/cues.md")
	if err != nil {
		t.Fatal(err)
	}
	id3, err := os.ReadFile("testdata/example.id3")
	if err != nil {
		t.Fatal(err)
	}
	emsg, err := os.ReadFile("testdata/example.emsg")
	if err != nil {
		t.Fatal(err)
	}
	dr, err := os.ReadFile("testdata/example.daterange")
	if err != nil {
		t.Fatal(err)
	}
	endWire, _ := EndWire("sneaker-42")
	endTag, err := EncodeID3(ID3Description, endWire)
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := exampleCue(t).Wire()
	for name, want := range map[string]string{
		"ID3 of the example cue": hex.Dump(id3),
		"ID3 of its END event":   hex.Dump(endTag),
		"emsg head":              hex.Dump(emsg[:0x50]),
		"DATERANGE":              string(dr),
		"wire JSON":              string(wire) + "\n",
		"END JSON":               string(endWire) + "\n",
		"onCuePoint name":        `name: "` + PublisherCue + `"`,
		"onCuePoint end name":    `name: "` + PublisherCueEnd + `"`,
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/cues.md lacks the %s; it is now:\n%s", name, want)
		}
	}
}

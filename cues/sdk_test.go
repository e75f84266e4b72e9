package cues

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestSDK runs the SDK's tests with node's test runner. It skips only when
// node is not installed.
func TestSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "shopcast-cues.test.mjs")
	cmd.Dir = "sdk"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("# fail 0")) {
		t.Fatalf("node --test ran no tests?\n%s", out)
	}
}

func TestSDKEmbedded(t *testing.T) {
	got, err := fs.ReadFile(SDK, "sdk/shopcast-cues.js")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("sdk/shopcast-cues.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || len(got) == 0 {
		t.Fatal("embedded SDK differs from sdk/shopcast-cues.js")
	}
	if _, err := fs.Stat(SDK, "sdk/shopcast-cues.test.mjs"); err == nil {
		t.Fatal("the SDK's tests are embedded")
	}
}

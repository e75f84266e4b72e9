package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "playlist.m3u8")
	for _, body := range []string{"first", "second, longer than the first"} {
		if err := Replace(path, []byte(body)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != body {
			t.Fatalf("after Replace(%q): %q, %v", body, got, err)
		}
	}
	// Nothing but the file itself is left beside it.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries after two replaces, want 1", len(entries))
	}
	if err := Replace(filepath.Join(dir, "missing", "x"), []byte("x")); err == nil {
		t.Error("Replace into a missing directory succeeded")
	}
}

func TestWriteSynced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg1.m4s")
	if err := WriteSynced(path, []byte("media")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "media" {
		t.Errorf("WriteSynced wrote %q", got)
	}
}

package discseq

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBlocksSurviveRestart takes blocks, then opens the file again as a
// restarted server would (once after a clean close, once without one, as
// after kill -9 once the write landed): every block starts after the last.
func TestBlocksSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dsn.json")
	s := &Store{Path: path, Reserve: 10}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{0, 10, 20} {
		if got := s.Next("shop"); got != want {
			t.Errorf("block %d of shop: %d, want %d", i, got, want)
		}
	}
	if got := s.Next("other"); got != 0 {
		t.Errorf("first block of another stream: %d, want 0", got)
	}
	s.Close()

	s2 := &Store{Path: path, Reserve: 10}
	if err := s2.Open(); err != nil {
		t.Fatal(err)
	}
	if got := s2.Next("shop"); got != 30 {
		t.Errorf("after a clean restart: %d, want 30", got)
	}
	// No Close: wait for the writer as a crash after it would find it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == `{"other":10,"shop":40}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file after the block was taken: %s", b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s3 := &Store{Path: path, Reserve: 10}
	if err := s3.Open(); err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if got := s3.Next("shop"); got != 40 {
		t.Errorf("after a crash: %d, want 40", got)
	}
}

func TestOpenRefusesABrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dsn.json")
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&Store{Path: path}).Open(); err == nil {
		t.Error("a broken file was read as empty: numbers already used would be handed out again")
	}
}

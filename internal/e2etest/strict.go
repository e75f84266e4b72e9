package e2etest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StrictCheck has hls-parser 0.16.1 in strict mode (npm, pinned in
// package.json; e2e/testdata/hls_strict.mjs) parse each playlist, in one
// node run, and returns what it said of each: "" when it accepts one.
// Without node or hls-parser the test is skipped, but under CI (CI set) it
// fails: there the check must run.
func StrictCheck(t testing.TB, playlists []string) []string {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, a...) + " (make deps installs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed: %v", err)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "hls-parser", "package.json")); err != nil {
		missing("npm hls-parser is not installed: %v", err)
	}
	dir := t.TempDir()
	args := []string{filepath.Join(root, "e2e", "testdata", "hls_strict.mjs"), root}
	byFile := map[string]int{}
	for i, p := range playlists {
		f := filepath.Join(dir, fmt.Sprintf("%03d.m3u8", i))
		if err := os.WriteFile(f, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
		byFile[f] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node hls_strict.mjs: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("node hls_strict.mjs: %v", err)
	}
	res := make([]string, len(playlists))
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			File  string `json:"file"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("hls_strict.mjs said %q: %v", sc.Text(), err)
		}
		i, ok := byFile[r.File]
		if !ok {
			t.Fatalf("hls_strict.mjs reported an unknown file %s", r.File)
		}
		if !r.OK {
			res[i] = r.Error
			if res[i] == "" {
				res[i] = "refused without a message"
			}
		}
		seen++
	}
	if seen != len(playlists) {
		t.Fatalf("hls_strict.mjs reported %d of %d playlists:\n%s", seen, len(playlists), out)
	}
	return res
}

// ModuleRoot walks up from the working directory to the directory of
// go.mod, which holds node_modules and testdata.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

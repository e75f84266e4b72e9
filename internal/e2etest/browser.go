package e2etest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where make deps puts Debian's chromium.
const ChromiumPath = "/usr/bin/chromium"

// Chromium returns an allocator for Debian's chromium, headless with the
// flags /work/shared/TOOLING.md lists (off the network, in a fresh
// profile); the first Run on a context of it starts the browser and the
// test's cleanup stops it. Tabs not in front keep their timers and frames
// running: pages played side by side in one browser must not be late by
// the throttling alone. Without chromium the test fails under CI and is
// skipped elsewhere.
func Chromium(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required (make deps installs it): %v", err)
		}
		t.Skipf("chromium is not installed (make deps installs it): %v", err)
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancel)
	return alloc
}

// EvalJS evaluates expr in the page and decodes its value as T.
func EvalJS[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	return v
}

// PollJS evaluates expr every 100 ms until cond holds, and returns the
// value that satisfied it and how long that took; on timeout it fails
// with the last value (its last 4000 bytes).
func PollJS[T any](t testing.TB, ctx context.Context, d time.Duration, what, expr string, cond func(T) bool) (T, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		v := EvalJS[T](t, ctx, expr)
		if cond(v) {
			return v, time.Since(start)
		}
		if time.Since(start) > d {
			b, _ := json.Marshal(v)
			t.Fatalf("timed out after %v waiting for %s; page: %s", d, what, Tail(string(b), 4000))
		}
		if err := chromedp.Do(ctx, chromedp.Sleep(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
}

// WaitUntil polls cond every 50 ms until it holds, failing the test after
// d: the conditions are on other processes or goroutines that nothing can
// signal to the test.
func WaitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Tail is the last n bytes of s, for logs in failure messages.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// Get GETs url and returns the status, body and header, failing the test
// when it cannot.
func Get(t testing.TB, url string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b, resp.Header
}

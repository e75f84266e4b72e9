package origin

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestHeaderCache(t *testing.T) {
	var c headerCache
	a, b := c.value("video/mp4"), c.value("video/mp4")
	if &a[0] != &b[0] || a[0] != "video/mp4" || cap(a) != 1 {
		t.Errorf("value not shared or not len == cap == 1: %p %p cap %d", &a[0], &b[0], cap(a))
	}
	if got := c.maxAge(12); got[0] != "public, max-age=12" || &got[0] != &c.maxAge(12)[0] {
		t.Errorf("maxAge(12) = %q, or not shared", got)
	}
	for i := range 2 * maxCachedValues {
		c.value(fmt.Sprint("v", i))
		c.maxAge(int64(i))
	}
	if len(c.values) > maxCachedValues || len(c.ages) > maxCachedValues {
		t.Errorf("cache grew to %d values, %d ages, bound %d", len(c.values), len(c.ages), maxCachedValues)
	}
	if got := c.value("v1000"); got[0] != "v1000" {
		t.Errorf("value past the bound = %q", got)
	}
	t1 := time.Date(2026, 11, 25, 1, 2, 3, 400, time.FixedZone("X", 3600))
	if got, want := c.lastModified(t1)[0], "Wed, 25 Nov 2026 00:02:03 GMT"; got != want {
		t.Errorf("lastModified = %q, want %q", got, want)
	}
	if got := c.lastModified(t1.Add(time.Second))[0]; got != t1.Add(time.Second).UTC().Format(http.TimeFormat) {
		t.Errorf("lastModified of the next second = %q", got)
	}
}

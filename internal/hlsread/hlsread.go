// Package hlsread reads a stream to its end with gohlslib's Client, for
// the tests that check what a real HLS client gets from an ended playlist.
package hlsread

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2"
)

// ToEnd starts c, whose URI and OnTracks are set, waits at most timeout for
// it to read the playlist to its end ("end of stream"), and closes it. It
// silences the download hooks left nil and takes OnDecodeError for itself:
// a decode error is an error, as is any other reason the client stopped,
// and the timeout.
func ToEnd(c *gohlslib.Client, timeout time.Duration) error {
	quiet := func(string) {}
	if c.OnDownloadPrimaryPlaylist == nil {
		c.OnDownloadPrimaryPlaylist = quiet
	}
	if c.OnDownloadStreamPlaylist == nil {
		c.OnDownloadStreamPlaylist = quiet
	}
	if c.OnDownloadSegment == nil {
		c.OnDownloadSegment = quiet
	}
	var mu sync.Mutex
	var decodeErrs []error
	c.OnDecodeError = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		decodeErrs = append(decodeErrs, err)
	}
	if err := c.Start(); err != nil {
		return err
	}
	defer c.Close()
	waited := make(chan error, 1)
	go func() { waited <- c.Wait2() }()
	select {
	case err := <-waited:
		if err != nil && !strings.Contains(err.Error(), "end of stream") {
			return fmt.Errorf("gohlslib client: %w", err)
		}
	case <-time.After(timeout):
		return errors.New("gohlslib client did not reach the end")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(decodeErrs) > 0 {
		return fmt.Errorf("gohlslib decode errors: %v", decodeErrs)
	}
	return nil
}

// Package discseq keeps, across restarts, the discontinuity sequence
// numbers each stream name may use next.
//
// A stream's media sequence and file names come from the wall clock
// (packager.WallClockNumbers), but its discontinuity sequence cannot: hls.js
// walks an array up to the playlist's EXT-X-DISCONTINUITY-SEQUENCE on every
// reload, so a wall-clock value (tens of millions) freezes it. Yet RFC
// 8216bis 6.2.2 forbids the sequence to go back, which a restart that counts
// from 0 again does. So a stream starting afresh takes a block of Reserve
// numbers, recorded in a small JSON file before the stream uses them: the
// next start, after a crash or not, begins after the block.
package discseq

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"

	"github.com/shopcast/shopcast/internal/atomicfile"
)

// Store hands out blocks of discontinuity sequence numbers per stream.
type Store struct {
	// Path is the JSON file the blocks are recorded in.
	Path string
	// Reserve is the size of a block: a stream that reconnects more often
	// than this before the server restarts may repeat numbers after the
	// restart. It defaults to 100.
	Reserve int64
	// Logger takes the warning of a failed write. It defaults to
	// slog.Default().
	Logger *slog.Logger

	mu    sync.Mutex
	next  map[string]int64
	dirty chan struct{}
	done  chan struct{}
}

// Open reads the file (a missing file is an empty store) and starts the
// writer. A file that cannot be read or parsed is an error: starting from 0
// would hand out numbers already used.
func (s *Store) Open() error {
	if s.Reserve <= 0 {
		s.Reserve = 100
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.next = map[string]int64{}
	b, err := os.ReadFile(s.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("discontinuity sequences: %w", err)
	default:
		if err := json.Unmarshal(b, &s.next); err != nil {
			return fmt.Errorf("discontinuity sequences: %s: %w", s.Path, err)
		}
	}
	s.dirty, s.done = make(chan struct{}, 1), make(chan struct{})
	go s.writer()
	return nil
}

// Next returns the first number of a new block for stream. It never waits
// on the disk: the block is written by the writer goroutine, so a stream's
// start (under the packager's lock) does not queue other streams behind an
// fsync. A crash in the few milliseconds before the write lands may hand
// the same block out again.
func (s *Store) Next(stream string) int64 {
	s.mu.Lock()
	n := s.next[stream]
	s.next[stream] = n + s.Reserve
	s.mu.Unlock()
	select {
	case s.dirty <- struct{}{}:
	default: // a write is already due and will take this block too
	}
	return n
}

// Close writes what is not written yet and stops the writer.
func (s *Store) Close() {
	close(s.dirty)
	<-s.done
}

func (s *Store) writer() {
	defer close(s.done)
	for range s.dirty {
		s.mu.Lock()
		b, err := json.Marshal(s.next)
		s.mu.Unlock()
		if err == nil {
			err = atomicfile.Replace(s.Path, b)
		}
		if err != nil {
			s.Logger.Warn("discontinuity sequences not recorded: after a restart a stream may repeat them", "path", s.Path, "err", err)
		}
	}
}

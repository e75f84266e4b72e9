package cues

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/shopcast/shopcast/packager"
)

// Store errors.
var (
	// ErrCueNotFound is a cue id the stream has no record of.
	ErrCueNotFound = errors.New("cue not found")
	// ErrIDUsed is a cue id the stream has used before; ids are never
	// reused. Reserve returns it with the record that holds the id, so that
	// a retry of the same cue can be told from another cue.
	ErrIDUsed = errors.New("cue id already used in this stream")
)

// State is where a cue is in its life.
type State string

// Cue states. The API shows scheduled, active, ended and cancelled.
const (
	// StatePending is a cue whose id is reserved while the packager places
	// it. It is never shown. One left by a crash (its Session is an earlier
	// handle's) is not re-added at the stream's start, as its POST was never
	// acknowledged; a retry of the same cue takes it over (Reserve).
	StatePending State = "pending"
	// StateScheduled is a placed cue whose start is in the future.
	StateScheduled State = "scheduled"
	// StateActive is a placed cue that has started and not ended.
	StateActive State = "active"
	// StateEnded is a cue that ran out its duration or was deleted while
	// active.
	StateEnded State = "ended"
	// StateCancelled is a cue deleted before its start.
	StateCancelled State = "cancelled"
	// StateFailed is a cue the packager refused; its id stays used.
	StateFailed State = "failed"

	// statePlaced is stored for a placed cue; StateAt tells scheduled,
	// active and ended apart by the clock.
	statePlaced State = "placed"
)

// Record is a cue as stored: the cue, where it landed and its state.
type Record struct {
	Stream string `json:"stream"`
	Cue    Cue    `json:"cue"`
	// Seq is the cue's sequence number in its stream, from 1; its emsg ids
	// derive from it (EmsgIDs).
	Seq uint32 `json:"seq"`
	// State is the stored state; use StateAt for the current one.
	State State `json:"state"`
	// Media is the resolved media time of the start.
	Media time.Duration `json:"media"`
	// Start is the program date-time of the start.
	Start time.Time `json:"start"`
	// End is the program date-time of the end once known: Start plus the
	// duration, or when the cue was deleted. Zero while open-ended.
	End time.Time `json:"end"`
	// EndMedia is the media time of the end of a deleted cue, if the
	// packager placed its END event.
	EndMedia time.Duration `json:"end_media"`
	Created  time.Time     `json:"created"`
	Updated  time.Time     `json:"updated"`
	// Session is the store handle that reserved a pending cue (Store's
	// session); empty once the cue is placed or finished.
	Session string `json:"session,omitempty"`
}

// StateAt is the state at wall-clock time now.
func (r *Record) StateAt(now time.Time) State {
	if r.State != statePlaced {
		return r.State
	}
	switch {
	case now.Before(r.Start):
		return StateScheduled
	case !r.End.IsZero() && !now.Before(r.End):
		return StateEnded
	default:
		return StateActive
	}
}

// Store keeps every stream's cues in a bbolt file. Every write is committed
// and fsynced before the method returns, so what the API acknowledged
// survives a crash.
//
// Layout: bucket "streams" / stream name / "cues" (id -> Record JSON, kept
// forever: the set of ids ever used) and "open" (ids not yet finished); the
// stream bucket's sequence numbers the cues.
type Store struct {
	// Path is the bbolt file; it is created if missing. Required.
	Path string
	// LockTimeout is how long Open waits for another process holding the
	// file. It defaults to 1s.
	LockTimeout time.Duration
	// CommitDelay is how long a write waits for others to share its
	// commit. It defaults to DefaultCommitDelay.
	CommitDelay time.Duration

	db *bolt.DB
	// session names this handle in the pending records it writes: a
	// pending record of another session was left by a process that stopped
	// while placing it. A random id rather than the start time, so that a
	// clock stepped back across a restart cannot make a leftover look like
	// a placement still in flight.
	session string

	// lastPrune throttles pruneOpen to once per pruneEvery per stream:
	// scanning the open set on every POST made a burst of cues quadratic.
	pruneMu   sync.Mutex
	lastPrune map[string]time.Time
}

// pruneEvery is how often a stream's open set is swept for ended cues.
const pruneEvery = time.Second

// prunable reports whether stream's open set is due for a sweep, and
// records the sweep.
func (s *Store) prunable(stream string, now time.Time) bool {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	if s.lastPrune == nil {
		s.lastPrune = map[string]time.Time{}
	}
	if last, ok := s.lastPrune[stream]; ok && now.Sub(last) < pruneEvery && now.After(last) {
		return false
	}
	s.lastPrune[stream] = now
	return true
}

var (
	bucketStreams = []byte("streams")
	bucketCues    = []byte("cues")
	bucketOpen    = []byte("open")
)

// OpenStore opens (or creates) the store at path with default settings.
func OpenStore(path string) (*Store, error) {
	s := &Store{Path: path}
	if err := s.Open(); err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens the file.
func (s *Store) Open() error {
	if s.Path == "" {
		return errors.New("cue store: no path")
	}
	if s.LockTimeout <= 0 {
		s.LockTimeout = time.Second
	}
	db, err := bolt.Open(s.Path, 0o600, &bolt.Options{Timeout: s.LockTimeout})
	if err != nil {
		return fmt.Errorf("cue store: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketStreams)
		return err
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("cue store: %w", err)
	}
	// Reservations and placements are group-committed (DB.Batch): at 50
	// cues/s, two fsynced commits per cue were most of the server's CPU per
	// cue, and the media path shares those cores. A write waits up to
	// CommitDelay for others to join its commit; it still returns only once
	// committed and fsynced.
	if s.CommitDelay <= 0 {
		s.CommitDelay = DefaultCommitDelay
	}
	db.MaxBatchDelay = s.CommitDelay
	s.db = db
	s.session = newID()
	return nil
}

// DefaultCommitDelay is Store.CommitDelay's default. At 50 cues/s a POST
// comes every 20 ms and makes two writes (reserve, place): with bbolt's
// default 10 ms most commits held one write, each with two fdatasyncs,
// about 200 a second, and the kernel's work for them delayed parts by up
// to a millisecond. 50 ms makes about 20 commits a second of up to five
// writes each, for about 60 ms more on a POST's round trip.
const DefaultCommitDelay = 50 * time.Millisecond

// Close closes the file.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

func streamBucket(tx *bolt.Tx, stream string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketStreams)
	if root == nil {
		return nil, errors.New("cue store: not initialised")
	}
	if !create {
		return root.Bucket([]byte(stream)), nil
	}
	if stream == "" {
		return nil, errors.New("cue store: empty stream name")
	}
	b, err := root.CreateBucketIfNotExists([]byte(stream))
	if err != nil {
		return nil, err
	}
	if _, err := b.CreateBucketIfNotExists(bucketCues); err != nil {
		return nil, err
	}
	if _, err := b.CreateBucketIfNotExists(bucketOpen); err != nil {
		return nil, err
	}
	return b, nil
}

func getRecord(b *bolt.Bucket, id string) (*Record, error) {
	if b == nil {
		return nil, ErrCueNotFound
	}
	v := b.Bucket(bucketCues).Get([]byte(id))
	if v == nil {
		return nil, ErrCueNotFound
	}
	r := &Record{}
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("cue store: record %q: %w", id, err)
	}
	return r, nil
}

func putRecord(b *bolt.Bucket, r *Record) error {
	if r.State != StatePending {
		r.Session = ""
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := b.Bucket(bucketCues).Put([]byte(r.Cue.ID), v); err != nil {
		return err
	}
	open := b.Bucket(bucketOpen)
	if r.State == StatePending || r.State == statePlaced {
		return open.Put([]byte(r.Cue.ID), openValue(r))
	}
	return open.Delete([]byte(r.Cue.ID))
}

// openValue is what the open set keeps of a record, so that pruneOpen
// decodes no record: its end (8 bytes, big-endian Unix nanoseconds) once it
// is placed with one, openNoEnd otherwise. Sets written before held no value.
func openValue(r *Record) []byte {
	if r.State != statePlaced || r.End.IsZero() {
		return []byte{openNoEnd}
	}
	return binary.BigEndian.AppendUint64(nil, uint64(r.End.UnixNano()))
}

// openNoEnd is the open-set value of a cue without a known end.
const openNoEnd = '-'

// newID generates a cue id: 16 characters from the URL-safe base64
// alphabet (96 random bits).
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Reserve records c as pending in stream, taking its id (generating one
// into c.ID if empty) and the next sequence number. It returns ErrIDUsed for
// an id the stream has used before, with the record that holds it.
//
// A pending record of c's id left by an earlier handle (the server stopped
// between reserving and placing it) is taken over when its cue is c
// (sameCue): Reserve returns it as if just reserved, with its sequence
// number, so that a retried POST places the cue its first attempt could
// not; if that attempt reached the packager before the crash, players
// keep the same emsg ids. A leftover of another cue stays ErrIDUsed.
func (s *Store) Reserve(stream string, c *Cue, now time.Time) (Record, error) {
	var rec Record
	// Batch (see Open). fn may run more than once: an id it generated is
	// then checked again as if the client had chosen it, and the sequence
	// number is taken anew.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		rec = Record{}
		b, err := streamBucket(tx, stream, true)
		if err != nil {
			return err
		}
		cues := b.Bucket(bucketCues)
		if c.ID == "" {
			for c.ID = newID(); cues.Get([]byte(c.ID)) != nil; c.ID = newID() {
			}
		} else if cues.Get([]byte(c.ID)) != nil {
			r, err := getRecord(b, c.ID)
			if err != nil {
				return err
			}
			if r.State != StatePending || r.Session == s.session || !sameCue(&r.Cue, c) {
				rec = *r
				return ErrIDUsed
			}
			r.Session, r.Updated = s.session, now
			rec = *r
			return putRecord(b, r)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if seq > math.MaxInt32 {
			return errors.New("cue store: stream has used every cue sequence number")
		}
		if s.prunable(stream, now) {
			if err := pruneOpen(b, now); err != nil {
				return err
			}
		}
		rec = Record{Stream: stream, Cue: *c, Seq: uint32(seq), State: StatePending,
			Created: now, Updated: now, Session: s.session}
		return putRecord(b, &rec)
	})
	if err != nil && !errors.Is(err, ErrIDUsed) {
		return Record{}, err
	}
	return rec, err
}

// sameCue reports whether a and b are the same cue as stored: a retry of a
// POST must match the cue the store decoded from the first, not its bytes,
// so key order, spacing and the zone of an RFC 3339 `at` do not matter.
func sameCue(a, b *Cue) bool {
	ja, erra := canonicalCue(a)
	jb, errb := canonicalCue(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

func canonicalCue(c *Cue) ([]byte, error) {
	n := *c
	n.At.Wall = n.At.Wall.UTC()
	return compactJSON(&n)
}

// pruneOpen drops from the open set the cues whose duration has run out, so
// listing stays proportional to the live cues, not the history.
func pruneOpen(b *bolt.Bucket, now time.Time) error {
	var done [][]byte
	err := b.Bucket(bucketOpen).ForEach(func(k, v []byte) error {
		switch len(v) {
		case 8:
			if !now.Before(time.Unix(0, int64(binary.BigEndian.Uint64(v)))) {
				done = append(done, append([]byte(nil), k...))
			}
			return nil
		case 1: // openNoEnd
			return nil
		}
		r, err := getRecord(b, string(k))
		if err != nil {
			return err
		}
		if r.StateAt(now) == StateEnded {
			done = append(done, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range done {
		if err := b.Bucket(bucketOpen).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// update applies fn to the record of id in stream and writes it back.
func (s *Store) update(stream, id string, now time.Time, fn func(r *Record) error) (Record, error) {
	var rec Record
	// Batch (see Open): the "now" cues that land on one frame are placed in
	// one commit. fn may run more than once (a failed batch is retried
	// call by call), which rewriting the record allows.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b, err := streamBucket(tx, stream, false)
		if err != nil {
			return err
		}
		r, err := getRecord(b, id)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
		r.Updated = now
		if err := putRecord(b, r); err != nil {
			return err
		}
		rec = *r
		return nil
	})
	return rec, err
}

// Place records where the packager placed a pending cue.
func (s *Store) Place(stream, id string, at packager.EventTime, now time.Time) (Record, error) {
	return s.update(stream, id, now, func(r *Record) error {
		r.place(at)
		return nil
	})
}

// place marks r placed where the packager put it; both stores record a
// placement so.
func (r *Record) place(at packager.EventTime) {
	r.State = statePlaced
	r.Media = at.Media
	r.Start = at.Wall
	r.End = time.Time{}
	if r.Cue.DurationMs > 0 {
		r.End = at.Wall.Add(time.Duration(r.Cue.DurationMs) * time.Millisecond)
	}
}

// replace moves r to where the packager placed it again after its stream
// restarted (see Store.Replace).
func (r *Record) replace(at packager.EventTime, now time.Time) {
	r.Media = at.Media
	if r.StateAt(now) == StateScheduled {
		r.Start = at.Wall
		if r.Cue.DurationMs > 0 {
			r.End = at.Wall.Add(time.Duration(r.Cue.DurationMs) * time.Millisecond)
		}
	}
}

// Replace records where the packager placed a cue again after its stream
// restarted. A scheduled cue takes the new start; an active one keeps its
// start and end (it was re-added for the rest of its duration) and takes
// the new media time.
func (s *Store) Replace(stream, id string, at packager.EventTime, now time.Time) (Record, error) {
	return s.update(stream, id, now, func(r *Record) error {
		r.replace(at, now)
		return nil
	})
}

// Finish ends (StateEnded) or cancels (StateCancelled) a cue, or marks it
// failed (StateFailed). end is where its END event landed; zero if it has
// none (a cancel, or a stream that is gone), in which case an ended cue's
// end is now.
func (s *Store) Finish(stream, id string, state State, end packager.EventTime, now time.Time) (Record, error) {
	return s.update(stream, id, now, func(r *Record) error {
		r.State = state
		if state == StateCancelled {
			r.End = time.Time{} // it never started, so never ends
		}
		if state != StateEnded {
			return nil
		}
		r.End, r.EndMedia = end.Wall, end.Media
		if r.End.IsZero() {
			r.End = now
		}
		return nil
	})
}

// Release forgets a pending cue the packager never placed, freeing its id:
// no player has seen it.
func (s *Store) Release(stream, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := streamBucket(tx, stream, false)
		if err != nil {
			return err
		}
		r, err := getRecord(b, id)
		if err != nil {
			return err
		}
		if r.State != StatePending {
			return fmt.Errorf("cue store: release of %s cue %q", r.State, id)
		}
		if err := b.Bucket(bucketCues).Delete([]byte(id)); err != nil {
			return err
		}
		return b.Bucket(bucketOpen).Delete([]byte(id))
	})
}

// Get returns the record of cue id in stream, or ErrCueNotFound.
func (s *Store) Get(stream, id string) (Record, error) {
	var rec Record
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := streamBucket(tx, stream, false)
		if err != nil {
			return err
		}
		r, err := getRecord(b, id)
		if err != nil {
			return err
		}
		rec = *r
		return nil
	})
	return rec, err
}

// Known reports whether the store has any record of stream.
func (s *Store) Known(stream string) bool {
	known := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		b, err := streamBucket(tx, stream, false)
		known = err == nil && b != nil
		return nil
	})
	return known
}

// OpenCues returns the stream's cues that are not finished (pending and placed,
// which may have ended by the clock since), ordered by start then sequence.
func (s *Store) OpenCues(stream string) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := streamBucket(tx, stream, false)
		if err != nil || b == nil {
			return err
		}
		return b.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
			r, err := getRecord(b, string(k))
			if err != nil {
				return err
			}
			out = append(out, *r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].Seq < out[j].Seq
	})
	return out, err
}

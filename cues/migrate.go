package cues

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// MigrateReport counts what Migrate did.
type MigrateReport struct {
	// Streams is how many streams the single-node store had.
	Streams int
	// Moved is how many cue records were written to the cluster.
	Moved int
	// Present is how many the cluster had already, as they are in the
	// store (an earlier run): not written again.
	Present int
	// Conflicts lists "stream/id" of the records the cluster has another
	// version of (the cue changed there since an earlier run, or another
	// node's store used the id): left as the cluster has them.
	Conflicts []string
}

func (r MigrateReport) String() string {
	return fmt.Sprintf("%d streams: %d cues moved, %d already in the cluster, %d conflicts",
		r.Streams, r.Moved, r.Present, len(r.Conflicts))
}

// Migrate moves every cue of a single node's store into a cluster's: each
// record as it is (id, sequence number, state, resolved times), and each
// stream's sequence number, raised to the store's so that new cues get
// emsg ids of their own. It is idempotent: a record the cluster has
// already is left alone, so a run that stopped half way can run again, and
// a second run moves nothing. Run it with the node stopped (the store's
// file is locked while the server has it open).
func Migrate(from *Store, to *ClusterStore) (MigrateReport, error) {
	var rep MigrateReport
	streams, err := from.Export()
	if err != nil {
		return rep, err
	}
	rep.Streams = len(streams)
	for _, sr := range streams {
		for i := range sr.Records {
			moved, err := to.importRecord(sr.Stream, &sr.Records[i])
			switch {
			case errors.Is(err, errConflict):
				rep.Conflicts = append(rep.Conflicts, sr.Stream+"/"+sr.Records[i].Cue.ID)
			case err != nil:
				return rep, fmt.Errorf("cue %q of %q: %w", sr.Records[i].Cue.ID, sr.Stream, err)
			case moved:
				rep.Moved++
			default:
				rep.Present++
			}
		}
		if err := to.raiseSeq(sr.Stream, sr.LastSeq); err != nil {
			return rep, fmt.Errorf("sequence of %q: %w", sr.Stream, err)
		}
	}
	return rep, nil
}

var errConflict = errors.New("the cluster has another version of the cue")

// importRecord writes r unless the cluster has its id; moved is false when
// the cluster has r already.
func (s *ClusterStore) importRecord(stream string, r *Record) (moved bool, err error) {
	if !validID(r.Cue.ID) {
		return false, fmt.Errorf("cue id %q cannot be a key", r.Cue.ID)
	}
	r.Stream = stream
	v, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	ctx, cancel := s.ctx()
	_, err = s.bkt().Create(ctx, recordKey(stream, r.Cue.ID), v)
	cancel()
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, s.failed("write", err)
	}
	have, _, err := s.getEntry(stream, r.Cue.ID)
	if err != nil {
		return false, err
	}
	hv, err := json.Marshal(&have)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(hv, v) {
		return false, errConflict
	}
	return false, nil
}

// raiseSeq makes stream's last sequence number at least seq.
func (s *ClusterStore) raiseSeq(stream string, seq uint64) error {
	key := seqKey(stream)
	for range 100 {
		v, rev, err := s.leaderGet(key)
		var cur uint64
		switch {
		case errors.Is(err, ErrCueNotFound):
			rev = 0
		case err != nil:
			return err
		default:
			if cur, err = strconv.ParseUint(string(v), 10, 32); err != nil {
				return err
			}
		}
		if cur >= seq && rev != 0 {
			return nil
		}
		ctx, cancel := s.ctx()
		nv := []byte(strconv.FormatUint(max(cur, seq), 10))
		if rev == 0 {
			_, err = s.bkt().Create(ctx, key, nv)
		} else {
			_, err = s.bkt().Update(ctx, key, nv, rev)
		}
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue
		default:
			return s.failed("write", err)
		}
	}
	return fmt.Errorf("%w: the sequence of %q is contended", ErrUnavailable, stream)
}

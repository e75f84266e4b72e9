package cues

import (
	"encoding/json"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// StreamRecords is one stream's cues as the Store holds them, for a
// migration: every record (finished ones too, as they hold the ids ever
// used) and the stream's last sequence number.
type StreamRecords struct {
	Stream  string
	Records []Record
	LastSeq uint64
}

// Export reads every stream's cues in one read transaction, streams by
// name and records by sequence number.
func (s *Store) Export() ([]StreamRecords, error) {
	var out []StreamRecords
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketStreams)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(name []byte) error {
			b := root.Bucket(name)
			sr := StreamRecords{Stream: string(name), LastSeq: b.Sequence()}
			if cues := b.Bucket(bucketCues); cues != nil {
				err := cues.ForEach(func(k, v []byte) error {
					var r Record
					if err := json.Unmarshal(v, &r); err != nil {
						return fmt.Errorf("cue store: record %q of %q: %w", k, name, err)
					}
					sr.Records = append(sr.Records, r)
					return nil
				})
				if err != nil {
					return err
				}
			}
			sort.Slice(sr.Records, func(i, j int) bool { return sr.Records[i].Seq < sr.Records[j].Seq })
			out = append(out, sr)
			return nil
		})
	})
	return out, err
}

package webhooks

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketDeliveries holds one record per (event, endpoint) not yet
// delivered or given up: big-endian sequence number -> delivery JSON.
var bucketDeliveries = []byte("deliveries")

// delivery is one event on its way to one endpoint, as the outbox stores
// it.
type delivery struct {
	Seq uint64 `json:"seq"`
	// Endpoint is the endpoint's URL: a delivery whose endpoint left the
	// configuration is dropped at the next start.
	Endpoint string `json:"endpoint"`
	// ID is the webhook-id header, the same for every attempt and every
	// endpoint of the event: receivers dedupe by it.
	ID string `json:"id"`
	// Key names the cue of a cue event (cueKey), so that a later change
	// of its placement finds it.
	Key string `json:"key,omitempty"`
	// Due is when the event happens: it is not sent before.
	Due      time.Time `json:"due"`
	Attempts int       `json:"attempts"`
	Msg      Message   `json:"msg"`

	// In memory only.
	ep       *endpoint
	next     time.Time // the next attempt, after a failure
	inflight bool
	gone     bool // removed (dropped) while in flight
}

// outbox is the bbolt file of deliveries. Every write is committed and
// fsynced before it returns.
type outbox struct {
	db *bolt.DB
}

func openOutbox(path string, lockTimeout time.Duration) (*outbox, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("webhook outbox: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketDeliveries)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("webhook outbox: %w", err)
	}
	return &outbox{db: db}, nil
}

func (o *outbox) close() error { return o.db.Close() }

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// load returns every stored delivery in sequence order. A record that
// does not decode is removed and counted in bad.
func (o *outbox) load() (ds []*delivery, bad int, err error) {
	err = o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		var broken [][]byte
		err := b.ForEach(func(k, v []byte) error {
			d := &delivery{}
			if len(k) != 8 || json.Unmarshal(v, d) != nil {
				broken = append(broken, append([]byte(nil), k...))
				return nil
			}
			d.Seq = binary.BigEndian.Uint64(k)
			ds = append(ds, d)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range broken {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		bad = len(broken)
		return nil
	})
	return ds, bad, err
}

// write stores put and removes del, in one transaction.
func (o *outbox) write(put []*delivery, del []uint64) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		for _, seq := range del {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		for _, d := range put {
			v, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(d.Seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	return nil
}

// errNoPath is a Service with endpoints but no outbox file.
var errNoPath = errors.New("webhooks: no outbox path")

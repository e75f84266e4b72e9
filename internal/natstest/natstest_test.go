package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRestart stops two of three members of a cluster with an R3 bucket and
// starts them again on their ports and stores: JetStream answers through
// each afterwards, and the bucket has what was written.
func TestRestart(t *testing.T) {
	c := Start(t, 3)
	js := c.JetStream(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	c.Kill(1)
	c.Kill(2)
	c.Restart(1)
	c.Restart(2)
	for i := range 3 {
		c.WaitJetStream(i)
	}
	for {
		e, err := kv.Get(ctx, "k")
		if err == nil {
			if string(e.Value()) != "v" {
				t.Fatalf("after the restart: %q", e.Value())
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

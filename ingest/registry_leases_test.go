package ingest

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// fakeLeases is a cluster that refuses or grants every lease.
type fakeLeases struct {
	refuse   bool
	acquired []string
	released int
}

func (f *fakeLeases) Acquire(_ context.Context, name string, _ Publisher) (func(), error) {
	if f.refuse {
		return nil, fmt.Errorf("%w: held by another node", ErrNameInUse)
	}
	f.acquired = append(f.acquired, name)
	return func() { f.released++ }, nil
}

func TestRegistryLeases(t *testing.T) {
	tests := []struct {
		name   string
		refuse bool
	}{{"granted", false}, {"refused", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leases := &fakeLeases{refuse: tt.refuse}
			r := NewRegistry(nil)
			r.Leases = leases
			release, err := r.Admit(t.Context(), "shop", Publisher{Proto: "rtmp", Remote: "10.0.0.1:1"})
			if tt.refuse {
				if !errors.Is(err, ErrNameInUse) {
					t.Fatalf("err %v", err)
				}
				// The name is not left held here.
				if _, ok := r.Lookup("shop"); ok {
					t.Error("a publisher the cluster refused holds the name")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := r.Lookup("shop"); !ok || len(leases.acquired) != 1 {
				t.Fatalf("held %v, acquired %v", ok, leases.acquired)
			}
			release()
			if _, ok := r.Lookup("shop"); ok || leases.released != 1 {
				t.Errorf("after release: held %v, lease released %d times", ok, leases.released)
			}
		})
	}
}

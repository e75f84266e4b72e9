package cues

import (
	"errors"
	"sync"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// Ownership tells which node places a stream's cues: the one that owns the
// stream in the cluster's registry (it ingests the stream and holds its
// lease). The cluster's stream registry implements it.
type Ownership interface {
	// Owns reports whether this node owns stream now.
	Owns(stream string) bool
}

// DefaultPlaceWait is Service.PlaceWait's default.
const DefaultPlaceWait = time.Second

// placeParallel is how many queued cues of a stream the owner places at
// once.
const placeParallel = 16

// awaitPoll is how often a POST waiting for the owner reads its cue again.
const awaitPoll = 100 * time.Millisecond

// clusterState is the Service's state in a cluster.
type clusterState struct {
	once sync.Once
	quit chan struct{}
	done chan struct{}
	stop sync.Once
}

// clustered returns the cluster store when the Service runs in a cluster:
// Owners set and Store a ClusterStore.
func (s *Service) clustered() (*ClusterStore, bool) {
	if s.Owners == nil {
		return nil, false
	}
	cs, ok := s.Store.(*ClusterStore)
	return cs, ok
}

// placesHere reports whether this node places stream's cues: it owns the
// stream and the stream is live in its packager. During a hand-over the
// node that lost the lease may still have the stream for a moment; the
// lease decides.
func (s *Service) placesHere(stream string) bool {
	return s.Owners.Owns(stream) && s.Timeline.HasStream(stream)
}

// startCluster starts the goroutine that places the cues other nodes
// queued for the streams this node owns, and serves their end requests.
func (s *Service) startCluster() {
	cs, ok := s.clustered()
	if !ok {
		return
	}
	c := &s.cluster
	c.once.Do(func() {
		c.quit = make(chan struct{})
		c.done = make(chan struct{})
		go func() {
			defer close(c.done)
			for {
				select {
				case <-c.quit:
					return
				case <-cs.Dirty():
					for _, stream := range cs.TakeDirty() {
						if s.placesHere(stream) {
							s.serveCluster(cs, stream)
						} else {
							cs.dropHints(stream) // another node's work
						}
					}
				}
			}
		}()
	})
}

// stopCluster stops the goroutine of startCluster, waiting for the cue it
// is placing.
func (s *Service) stopCluster() {
	c := &s.cluster
	c.once.Do(func() {}) // none from now on
	if c.quit == nil {
		return
	}
	c.stop.Do(func() { close(c.quit) })
	<-c.done
}

// serveCluster places stream's queued cues and serves its end requests.
func (s *Service) serveCluster(cs *ClusterStore, stream string) {
	log := s.Logger.With("stream", stream)
	// Several at once: each placement waits on JetStream round trips, and
	// a burst of cues posted to other nodes would otherwise queue behind
	// them one by one. The packager resolves each "now" as it comes.
	var wg sync.WaitGroup
	sem := make(chan struct{}, placeParallel)
	for _, id := range cs.queued(stream) {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.placeQueued(cs, stream, id); err != nil && !errors.Is(err, ErrCueNotFound) {
				log.Error("queued cue not placed", "cue", id, "err", err)
			}
		})
	}
	wg.Wait()
	for _, id := range cs.endRequests(stream) {
		if err := s.serveEnd(cs, stream, id); err != nil {
			log.Error("cue end request not served", "cue", id, "err", err)
		}
	}
}

// syncCluster is the start of StreamStarted in a cluster: it marks the
// stream known to every node and brings this node's memory of the cues up
// to what the cluster acknowledged, before the stream's cues are put back.
func (s *Service) syncCluster(stream string) {
	cs, ok := s.clustered()
	if !ok {
		return
	}
	if err := cs.MarkStream(stream); err != nil {
		s.Logger.Error("cue store failed", "stream", stream, "err", err)
	}
	if err := cs.Sync(); err != nil {
		s.Logger.Error("cue store failed", "stream", stream, "err", err)
	}
}

// streamStartedCluster is StreamStarted's part in a cluster after the
// restore: it places the cues queued while the stream had no owner.
func (s *Service) streamStartedCluster(stream string) {
	cs, ok := s.clustered()
	if !ok {
		return
	}
	s.startCluster()
	if s.placesHere(stream) {
		s.serveCluster(cs, stream)
	}
}

// placeQueued places one queued cue, as the owner: once, at the time the
// packager resolves, which it records for every node.
func (s *Service) placeQueued(cs *ClusterStore, stream, id string) error {
	defer s.ids.lock(stream, id)()
	rec, rev, err := cs.getEntry(stream, id)
	if err != nil {
		return err
	}
	if rec.State != StateQueued {
		return nil // placed meanwhile, or finished
	}
	ev, err := NewEvent(&rec.Cue, rec.Seq)
	if err != nil {
		_, ferr := cs.Finish(stream, id, StateFailed, packager.EventTime{}, s.now())
		return errors.Join(err, ferr)
	}
	at, err := s.Timeline.AddEvent(stream, ev)
	if errors.Is(err, packager.ErrEventExists) {
		_, ferr := cs.Finish(stream, id, StateFailed, packager.EventTime{}, s.now())
		return errors.Join(ErrIDUsed, ferr)
	}
	if err != nil {
		return err // stays queued for the next owner or start
	}
	placed, err := cs.placeRev(stream, rec, rev, at, s.now())
	if errors.Is(err, ErrPlacedElsewhere) {
		// Cancelled (or placed by another node) while the packager placed
		// it here: take it out again.
		_, eerr := s.Timeline.EndEvent(stream, id)
		return errors.Join(err, eerr)
	}
	if err != nil {
		return err
	}
	if s.ClusterObserver != nil {
		s.ClusterObserver.CuePropagated(stream, s.now().Sub(rec.Created))
	}
	s.Logger.Info("queued cue placed", "stream", stream, "cue", id,
		"media_ms", placed.Media.Milliseconds())
	return nil
}

// enqueue is Place on a node that does not place stream's cues: the cue is
// queued in the cluster (acknowledged once it returns), and the owner
// places it. It waits up to PlaceWait for that, to answer with where the
// cue landed; a cue still queued then (the stream has no owner) is
// returned queued.
func (s *Service) enqueue(cs *ClusterStore, stream string, c *Cue) (Record, bool, error) {
	rec, err := cs.Enqueue(stream, c, s.now())
	if errors.Is(err, ErrIDUsed) && replay(&rec, c) {
		return rec, true, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	return s.await(cs, stream, rec, func(r *Record) bool { return r.State != StateQueued }), false, nil
}

// await waits up to PlaceWait for the record of rec's cue to satisfy done,
// and returns it as it is then.
func (s *Service) await(cs *ClusterStore, stream string, rec Record, done func(*Record) bool) Record {
	deadline := time.NewTimer(s.PlaceWait)
	defer deadline.Stop()
	// The watch tells of the change at once, but stalls for seconds when
	// the JetStream server holding it fails: read again now and then too.
	poll := time.NewTicker(awaitPoll)
	defer poll.Stop()
	for {
		ch := cs.Changed()
		r, err := cs.Get(stream, rec.Cue.ID)
		if err == nil {
			rec = r
			if done(&r) {
				return r
			}
		}
		select {
		case <-ch:
		case <-poll.C:
		case <-deadline.C:
			return rec
		}
	}
}

// endRemote is End on a node that does not place stream's cues: it asks the
// owner to end the cue and waits up to PlaceWait for that. When nobody
// does (the stream has no owner), it ends the cue in the store only, as
// End does for a stream that is gone.
func (s *Service) endRemote(cs *ClusterStore, stream string, rec *Record) (Record, error) {
	id := rec.Cue.ID
	if rec.State == StateQueued {
		// Not placed yet: it never starts. (An owner placing it at this
		// moment finds it cancelled when it records the placement, and
		// its Place fails.)
		return cs.Finish(stream, id, StateCancelled, packager.EventTime{}, s.now())
	}
	if err := cs.RequestEnd(stream, id, s.now()); err != nil {
		return Record{}, err
	}
	out := s.await(cs, stream, *rec, func(r *Record) bool { return !isOpen(r) })
	if !isOpen(&out) {
		return out, nil
	}
	state := StateEnded
	if rec.StateAt(s.now()) == StateScheduled {
		state = StateCancelled
	}
	out, err := cs.Finish(stream, id, state, packager.EventTime{}, s.now())
	if err != nil {
		return Record{}, err
	}
	return out, cs.ClearEnd(stream, id)
}

// serveEnd ends cue id of stream, which another node was asked to, as the
// owner.
func (s *Service) serveEnd(cs *ClusterStore, stream, id string) error {
	unlock := s.ids.lock(stream, id)
	rec, err := cs.Get(stream, id)
	switch {
	case err != nil:
	case rec.State == statePlaced:
		_, err = s.End(stream, &rec)
	case rec.State == StateQueued:
		// Deleted before the owner placed it: it never starts.
		_, err = cs.Finish(stream, id, StateCancelled, packager.EventTime{}, s.now())
	}
	unlock()
	if err != nil && !errors.Is(err, ErrCueNotFound) {
		return err
	}
	return cs.ClearEnd(stream, id)
}

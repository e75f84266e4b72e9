package cues

import (
	"errors"
	"fmt"
	"sync"

	"github.com/shopcast/shopcast/packager"
)

// The onCuePoint names of cues sent by the publisher in the stream
// (docs/cues.md, "Cues from the encoder"):
//
//	onCuePoint {name: "shopcast.cue", type: "event",
//	            parameters: {cue: "<the cue JSON, as POSTed>"}}
//	onCuePoint {name: "shopcast.cue.end", type: "event",
//	            parameters: {id: "<cue id>"}}
//
// The cue JSON is the API's: one schema, one validation. Other data
// messages (onTextData, other onCuePoint names) are not cues and are left
// alone.
const (
	PublisherCue    = "shopcast.cue"
	PublisherCueEnd = "shopcast.cue.end"
)

// publisherData is the state of PublisherData: the messages wait in a
// queue for one goroutine that places them, in order.
type publisherData struct {
	once      sync.Once
	closeOnce sync.Once
	q         chan publisherMsg
	quit      chan struct{}
	done      chan struct{}
}

type publisherMsg struct {
	stream string
	msg    packager.DataMessage
}

// PublisherData is the packager's OnData hook (packager.Config.OnData): a
// publisher's onCuePoint named PublisherCue becomes a cue of its stream, as
// if POSTed, and one named PublisherCueEnd ends one. A publisher holding the
// stream key is trusted as the API trusts its token. A cue without `at`
// (or "now") starts at the message's timestamp, on the frame it was sent
// with.
//
// It does not block the publisher: the messages wait in a queue of
// DataQueue; beyond that they are dropped and logged. Close stops it.
func (s *Service) PublisherData(stream string, m packager.DataMessage) {
	if m.Name != "onCuePoint" {
		return
	}
	s.Start()
	d := &s.data
	d.once.Do(func() {
		d.q = make(chan publisherMsg, s.DataQueue)
		d.quit = make(chan struct{})
		d.done = make(chan struct{})
		go s.placePublisherData()
	})
	select {
	case d.q <- publisherMsg{stream, m}:
	default:
		s.Logger.Warn("publisher cue dropped: too many waiting", "stream", stream, "limit", s.DataQueue)
	}
}

// Close stops placing publisher cues and closing polls, waiting for the
// ones being placed.
// Call it before closing the Store.
func (s *Service) Close() {
	s.closePolls()
	s.stopCluster()
	d := &s.data
	d.once.Do(func() {}) // no queue from now on
	if d.quit == nil {
		return
	}
	d.closeOnce.Do(func() { close(d.quit) })
	<-d.done
}

func (s *Service) placePublisherData() {
	d := &s.data
	defer close(d.done)
	for {
		select {
		case <-d.quit:
			return
		case pm := <-d.q:
			s.placePublisherMsg(pm.stream, pm.msg)
		}
	}
}

func (s *Service) placePublisherMsg(stream string, m packager.DataMessage) {
	name, params, ok := cuePoint(m)
	if !ok || (name != PublisherCue && name != PublisherCueEnd) {
		return
	}
	log := s.Logger.With("stream", stream)
	if name == PublisherCueEnd {
		id, _ := params["id"].(string)
		rec, err := s.endPublisherCue(stream, id)
		if err != nil {
			log.Warn("publisher cue end refused", "cue", id, "err", err)
			return
		}
		log.Info("publisher cue finished", "cue", id, "state", rec.State)
		return
	}
	js, _ := params["cue"].(string)
	if js == "" {
		log.Warn("publisher cue refused", "err", "parameters.cue: the cue JSON string is required")
		return
	}
	c, err := DecodeCue([]byte(js))
	if err != nil {
		log.Warn("publisher cue refused", "media_ms", m.MediaTime.Milliseconds(), "err", err)
		return
	}
	if c.At.Kind == AtNow {
		c.At = At{Kind: AtMedia, Media: m.MediaTime}
	}
	rec, err := s.Place(stream, c)
	if err != nil {
		log.Warn("publisher cue not placed", "cue", c.ID, "err", err)
		return
	}
	log.Info("publisher cue placed", "cue", rec.Cue.ID, "media_ms", rec.Media.Milliseconds())
}

// endPublisherCue ends cue id of stream as a DELETE does; one that is over
// already is left as it is.
func (s *Service) endPublisherCue(stream, id string) (Record, error) {
	if id == "" {
		return Record{}, errors.New(`parameters.id: a cue id string is required`)
	}
	rec, err := s.Store.Get(stream, id)
	if err != nil {
		return Record{}, err
	}
	switch rec.StateAt(s.now()) {
	case StateEnded, StateCancelled:
		return rec, nil
	case StatePending, StateFailed:
		return Record{}, fmt.Errorf("%w: %s", ErrCueNotFound, id)
	}
	return s.End(stream, &rec)
}

// cuePoint reads an onCuePoint's object: its name and parameters (AMF0
// object or ECMA array, both decoded as maps).
func cuePoint(m packager.DataMessage) (string, map[string]any, bool) {
	if len(m.Values) == 0 {
		return "", nil, false
	}
	obj, ok := m.Values[0].(map[string]any)
	if !ok {
		return "", nil, false
	}
	name, _ := obj["name"].(string)
	params, _ := obj["parameters"].(map[string]any)
	return name, params, name != ""
}

package server

import (
	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/packager"
	"github.com/shopcast/shopcast/recorder"
	"github.com/shopcast/shopcast/webhooks"
)

// startWebhooks opens the webhook outbox and starts its deliveries. The
// service reads cue records from store for the cue events' JSON.
func (s *Server) startWebhooks(store *cues.Store) (*webhooks.Service, error) {
	cfg := s.cfg
	wh, err := webhooks.New(webhooks.Config{
		Endpoints:   cfg.Webhooks,
		Path:        cfg.WebhookOutboxPath(),
		MaxOutbox:   cfg.WebhookOutboxMax,
		Queue:       cfg.WebhookQueue,
		Attempts:    cfg.WebhookAttempts,
		BackoffBase: cfg.WebhookBackoffBase,
		BackoffMax:  cfg.WebhookBackoffMax,
		Timeout:     cfg.WebhookTimeout,
		Cues:        store,
		Logger:      s.log,
	})
	if err != nil {
		return nil, err
	}
	if err := wh.Start(); err != nil {
		return nil, err
	}
	return wh, nil
}

// recordingReady tells wh of a recording closed as VOD, with the path
// where it is served.
func recordingReady(wh *webhooks.Service) func(stream, id string) {
	return func(stream, id string) {
		wh.RecordingReady(stream, id, (&recorder.Manifest{Stream: stream, ID: id}).URL())
	}
}

// chainHooks calls a's hooks, then b's: the packager has one Hooks and
// several consumers (the recorder, the webhooks). Each only queues, so one
// cannot hold up the other.
func chainHooks(a, b packager.Hooks) packager.Hooks {
	return packager.Hooks{
		OnSegment:   chain(a.OnSegment, b.OnSegment),
		OnEvent:     chain(a.OnEvent, b.OnEvent),
		OnStreamEnd: chain(a.OnStreamEnd, b.OnStreamEnd),
	}
}

func chain[T any](a, b func(T)) func(T) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(v T) { a(v); b(v) }
}

// chainStart calls each of the stream-start callbacks in turn.
func chainStart(fs ...func(string)) func(string) {
	return func(name string) {
		for _, f := range fs {
			f(name)
		}
	}
}

package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/shopcast/shopcast/ingest"
)

// ingestServer is an ingest listener as run drives it.
type ingestServer interface {
	Start() error
	Addr() net.Addr
	Close()
}

// newRTMPServer builds the RTMP ingest from the configuration. Everything
// run needs to know about the ingest API is in this file.
func newRTMPServer(cfg Config, sink ingest.Sink, reg *ingest.Registry, log *slog.Logger) ingestServer {
	return &ingest.RTMPServer{
		Address: cfg.RTMP,
		Sink:    sink,
		Auth:    &ingest.Auth{Enabled: cfg.PublishAuth, Keys: cfg.PublishKeys},
		// One Registry for every ingest protocol, so that a publisher coming
		// back over another protocol replaces its old session. Only RTMP
		// exists so far.
		Registry:          reg,
		Logger:            log,
		ReadTimeout:       cfg.RTMPReadTimeout,
		MaxConns:          cfg.RTMPMaxConns,
		MaxAMFMessageSize: cfg.RTMPMaxAMFBytes,
	}
}

// checkPublishNames checks the public names of publish_keys at start, not
// at the first publish. Errors never show the secret key.
func checkPublishNames(keys map[string]string) error {
	for _, name := range keys {
		if err := ingest.ValidateName(name); err != nil {
			return fmt.Errorf("publish_keys: %w", err)
		}
	}
	return nil
}

// newRTSPServer builds the RTSP ingest (ANNOUNCE/RECORD at
// rtsp://HOST:8554/live/KEY, TCP and UDP transports) with the same stream-key rules
// and registry as RTMP.
func newRTSPServer(cfg Config, sink ingest.Sink, reg *ingest.Registry, log *slog.Logger) ingestServer {
	return &ingest.RTSPServer{
		Address:        cfg.RTSP,
		UDPRTPAddress:  cfg.RTSPUDPRTP,
		UDPRTCPAddress: cfg.RTSPUDPRTCP,
		Sink:           sink,
		Auth:           &ingest.Auth{Enabled: cfg.PublishAuth, Keys: cfg.PublishKeys},
		Registry:       reg,
		Logger:         log,
		ReadTimeout:    cfg.RTMPReadTimeout,
	}
}

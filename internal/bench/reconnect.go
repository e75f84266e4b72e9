package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// ReconnectConfig configures the reconnect benchmark.
type ReconnectConfig struct {
	// FLV is the file ffmpeg replays (Fixture).
	FLV string
	// Rounds is how many times the publisher drops and comes back. It
	// defaults to 5.
	Rounds int
	// Gap is the time between the drop and the new publish. It defaults to
	// 500ms.
	Gap time.Duration
}

// ReconnectResult is the time from each new publish to its first part.
type ReconnectResult struct {
	Resume []time.Duration
	Load   string
}

// lastPart returns the number of the last part a media playlist's text
// lists, or -1 when it lists none.
func lastPart(text string) int64 {
	pl, err := parsePlaylist([]byte(text))
	if err != nil {
		return -1
	}
	return pl.parts[len(pl.parts)-1].n
}

func (r ReconnectResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reconnect: new publish to its first part in the playlist, %d rounds:", len(r.Resume))
	for _, d := range r.Resume {
		fmt.Fprintf(&b, " %.0f ms", float64(d)/float64(time.Millisecond))
	}
	fmt.Fprintf(&b, "; load %s", r.Load)
	return b.String()
}

// Reconnect measures how soon viewers see an RTMP publisher again after it
// dropped and reconnected within the grace period, as OBS does after a
// network drop. ffmpeg publishes the fixture in real time (-re -c copy, with
// the onMetaData an encoder sends) to an in-process server; each round kills
// it (SIGKILL: the kernel closes its socket), waits Gap, starts a new
// ffmpeg and polls the media playlist every 5 ms until a part newer than
// the old session's follows the last EXT-X-DISCONTINUITY. The time includes
// ffmpeg's own start and the RTMP handshake, and ends when the new
// session's first part (a PART-TARGET of media) is complete.
func Reconnect(ctx context.Context, cfg ReconnectConfig) (ReconnectResult, error) {
	var res ReconnectResult
	if cfg.Rounds <= 0 {
		cfg.Rounds = 5
	}
	if cfg.Gap <= 0 {
		cfg.Gap = 500 * time.Millisecond
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return res, errors.New("the reconnect benchmark needs ffmpeg")
	}
	srv, err := startServer()
	if err != nil {
		return res, err
	}
	defer srv.close()
	c := newHTTPClient(1)
	base := srv.baseURL()
	var pl []byte
	playlist := func() (string, error) {
		_, err := fetch(ctx, c, base+"stream.m3u8", &pl)
		return string(pl), err
	}

	publish := func() (stop func(), err error) {
		cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
			"-re", "-stream_loop", "-1", "-i", cfg.FLV, "-c", "copy", "-f", "flv", srv.publishURL())
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
	}

	stop, err := publish()
	if err != nil {
		return res, err
	}
	defer func() { stop() }()
	if err := waitReady(ctx, c, base); err != nil {
		return res, err
	}
	for range cfg.Rounds {
		// A few seconds of steady stream before each drop.
		if !sleep(ctx, 3*time.Second) {
			return res, ctx.Err()
		}
		stop()
		if !sleep(ctx, cfg.Gap) {
			return res, ctx.Err()
		}
		// The old session's parts are all in the playlist by now.
		text, err := playlist()
		if err != nil {
			return res, err
		}
		last := lastPart(text)
		t0 := time.Now()
		again, err := publish()
		if err != nil {
			return res, err
		}
		stop = again
		for {
			text, err := playlist()
			if err != nil {
				return res, err
			}
			if i := strings.LastIndex(text, "#EXT-X-DISCONTINUITY\n"); i >= 0 && lastPart(text[i:]) > last {
				res.Resume = append(res.Resume, time.Since(t0))
				break
			}
			if time.Since(t0) > 20*time.Second {
				return res, errors.New("no part of the new session within 20 s")
			}
			if !sleep(ctx, 5*time.Millisecond) {
				return res, ctx.Err()
			}
		}
	}
	res.Load = LoadAvg()
	return res, nil
}

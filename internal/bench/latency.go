package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// LatencyConfig sets up PublishToDeliverable.
type LatencyConfig struct {
	// FLV is the file the publisher loops. It is required.
	FLV string
	// Duration is how long parts are measured, after the stream started.
	// It defaults to 60s.
	Duration time.Duration
}

// LatencyResult is the outcome of PublishToDeliverable.
type LatencyResult struct {
	Source string
	// Latency is, per part, from the publisher's write of the part's last
	// video frame into the RTMP socket returning to the viewer holding all
	// the part's bytes, for a viewer whose GET of the preload-hinted part
	// was blocked on it (its blocking playlist reload beside it).
	Latency Dist
	// ViaPlaylist is the same for a viewer that first waits in a blocking
	// playlist reload for the part, then GETs it.
	ViaPlaylist Dist
	// Unmatched counts parts whose last video sample matched no sent frame
	// within 2 ms (timeline not mapped; left out of Latency).
	Unmatched int
	// Errors counts failed viewer requests; SegmentEnds counts blocking
	// reloads released by a segment end before the next part existed.
	Errors, SegmentEnds int
}

func (r *LatencyResult) String() string {
	return fmt.Sprintf("publish-to-deliverable (%s)\n  part request blocked on the hint   %s\n  blocking reload, then part GET    %s\n  unmatched parts %d, viewer errors %d, reloads released at segment end %d",
		r.Source, r.Latency, r.ViaPlaylist, r.Unmatched, r.Errors, r.SegmentEnds)
}

type receivedPart struct {
	n    int64
	body []byte
	at   time.Time
}

// PublishToDeliverable publishes cfg.FLV over RTMP to an in-process server
// and follows it with two LL-HLS viewers (followEdge) for cfg.Duration.
func PublishToDeliverable(ctx context.Context, cfg LatencyConfig) (*LatencyResult, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 60 * time.Second
	}
	src, err := loadSource(cfg.FLV)
	if err != nil {
		return nil, err
	}
	srv, err := startServer()
	if err != nil {
		return nil, err
	}
	defer srv.close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var log sendLog
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(ctx, srv.publishURL(), src, &log) }()

	client := newHTTPClient(4)
	if err := waitReady(ctx, client, srv.baseURL()); err != nil {
		return nil, errors.Join(err, drainErr(pubErr))
	}
	vt, err := fetchVideoTrack(ctx, client, srv.baseURL())
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	f := followEdge(runCtx, client, srv.baseURL())
	cancel()
	if err := drainErr(pubErr); err != nil {
		return nil, err
	}
	res := &LatencyResult{Source: src.desc, Errors: f.errors(), SegmentEnds: f.viaPlaylist.segmentEnds}
	if res.Latency, res.Unmatched, err = f.latency(f.hintedParts, vt, &log); err != nil {
		return nil, err
	}
	if res.ViaPlaylist, _, err = f.latency(f.playlistParts, vt, &log); err != nil {
		return nil, err
	}
	return res, nil
}

// edgeFollowers are the two viewers of publish-to-deliverable, run side by
// side on one stream: hinted (the part GET blocked on the preload hint,
// the blocking reload beside it: "a client blocked on the part") and
// viaPlaylist (the blocking reload for the part, then the part GET: the
// part's time includes the playlist's).
type edgeFollowers struct {
	hinted, viaPlaylist        *viewer
	hintedParts, playlistParts []receivedPart
}

// followEdge runs the two viewers of base until ctx ends.
func followEdge(ctx context.Context, client *http.Client, base string) *edgeFollowers {
	f := &edgeFollowers{
		hinted:      &viewer{c: stdFetcher{client}, base: base, keep: true},
		viaPlaylist: &viewer{c: stdFetcher{client}, base: base, keep: true},
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		f.hinted.runHinted(ctx, func(n int64, body []byte, _ int64, at time.Time) {
			f.hintedParts = append(f.hintedParts, receivedPart{n: n, body: bytes.Clone(body), at: at})
		})
	})
	wg.Go(func() {
		f.viaPlaylist.run(ctx, func(n int64, body []byte, _ int64, at time.Time) {
			f.playlistParts = append(f.playlistParts, receivedPart{n: n, body: bytes.Clone(body), at: at})
		})
	})
	wg.Wait()
	return f
}

func (f *edgeFollowers) errors() int { return f.hinted.errors + f.viaPlaylist.errors }

// latency returns publish-to-deliverable of parts, once the publisher has
// stopped writing log, and how many parts matched no sent frame.
func (f *edgeFollowers) latency(parts []receivedPart, vt *videoTrack, log *sendLog) (Dist, int, error) {
	firstDTS, ok := log.first()
	if !ok {
		return Dist{}, 0, errors.New("no video frame sent")
	}
	var lat []time.Duration
	unmatched := 0
	for _, p := range parts {
		d, ok, err := deliverable(vt, log, firstDTS, p.body, p.at)
		switch {
		case err != nil:
			return Dist{}, 0, fmt.Errorf("part%d.m4s: %w", p.n, err)
		case !ok:
			unmatched++
		default:
			lat = append(lat, d)
		}
	}
	return dist(lat), unmatched, nil
}

// deliverable returns the publish-to-deliverable time of a part received
// at at: from the send of its last video frame, found in log by its decode
// time, to at. firstDTS is log's first frame. ok is false when the part's
// last sample matches no sent frame within 2 ms.
func deliverable(vt *videoTrack, log *sendLog, firstDTS time.Duration, body []byte, at time.Time) (time.Duration, bool, error) {
	last, err := vt.lastDTS(body)
	if err != nil {
		return 0, false, err
	}
	// The packager puts the first keyframe (the first video frame the
	// publisher sends) at media time 0.
	sent, off, ok := log.lookup(firstDTS + last)
	if !ok || absDur(off) > 2*time.Millisecond {
		return 0, false, nil
	}
	return at.Sub(sent), true, nil
}

// fetchVideoTrack reads the stream's init segment, named by its playlist.
func fetchVideoTrack(ctx context.Context, client *http.Client, base string) (*videoTrack, error) {
	var plBody, initBody []byte
	if err := get(ctx, client, base+"stream.m3u8", &plBody); err != nil {
		return nil, err
	}
	pl, err := parsePlaylist(plBody)
	if err != nil {
		return nil, err
	}
	if err := get(ctx, client, base+pl.initURI, &initBody); err != nil {
		return nil, err
	}
	return parseInit(initBody)
}

func drainErr(ch chan error) error {
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("publisher did not stop")
	}
}

// videoTrack is what lastDTS needs from the init segment.
type videoTrack struct {
	id        uint32
	timescale uint32
	trex      *mp4.TrexBox
}

func parseInit(b []byte) (*videoTrack, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if f.Init == nil || f.Init.Moov == nil {
		return nil, errors.New("init: no moov")
	}
	for _, trak := range f.Init.Moov.Traks {
		if trak.Mdia.Hdlr.HandlerType != "vide" {
			continue
		}
		vt := &videoTrack{id: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale}
		if f.Init.Moov.Mvex != nil {
			vt.trex, _ = f.Init.Moov.Mvex.GetTrex(vt.id)
		}
		return vt, nil
	}
	return nil, errors.New("init: no video track")
}

// lastDTS returns the decode time of the part's last video sample: the
// traf's tfdt plus the durations of the samples before it.
func (vt *videoTrack) lastDTS(part []byte) (time.Duration, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(part))
	if err != nil {
		return 0, err
	}
	var last uint64
	found := false
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			for _, traf := range frag.Moof.Trafs {
				if traf.Tfhd.TrackID != vt.id || traf.Tfdt == nil {
					continue
				}
				t := traf.Tfdt.BaseMediaDecodeTime()
				for _, trun := range traf.Truns {
					trun.AddSampleDefaultValues(traf.Tfhd, vt.trex)
					for _, s := range trun.Samples {
						last, found = t, true
						t += uint64(s.Dur)
					}
				}
			}
		}
	}
	if !found {
		return 0, errors.New("no video sample")
	}
	return time.Duration(last) * time.Second / time.Duration(vt.timescale), nil
}

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// CuesConfig sets up Cues.
type CuesConfig struct {
	// FLV is the file the publisher loops. It is required.
	FLV string
	// Cues is how many cues the cue-to-viewer figure posts, one at a time,
	// 150 to 450 ms apart. It defaults to 100.
	Cues int
	// Rate is the cues per second of the load run. It defaults to 50 (the
	// API's default limit).
	Rate int
	// Duration is how long each publish-to-deliverable run (without cues,
	// then with Rate cues/s) measures. It defaults to 60s.
	Duration time.Duration
}

// CuesResult is the outcome of Cues.
type CuesResult struct {
	Source string
	// PartTarget is the packager's PART-TARGET; PartDur the median length of
	// the parts the viewer got.
	PartTarget, PartDur time.Duration
	// ToPlaylist is, per cue, from the POST's 201 being read to a blocked
	// viewer holding the first playlist with the cue's EXT-X-DATERANGE;
	// ToPart to the viewer holding the part with the cue's emsg. Negative
	// when the viewer had it before the producer read the 201.
	ToPlaylist, ToPart Dist
	// Missed counts cues the viewer never saw (either form).
	Missed int
	// Baseline and Loaded are publish-to-deliverable without cues and with
	// Rate cues/s posted during the run, for the viewer whose part GET was
	// blocked on the preload hint; BaselineVia and LoadedVia for the viewer
	// beside it that waits in a blocking reload, then GETs the part (and so
	// reads the playlist, with every DATERANGE, in the part's time).
	Baseline, Loaded       Dist
	BaselineVia, LoadedVia Dist
	// Posted and Refused count the load run's POSTs answered 201 and
	// otherwise; PostTime is their round trip.
	Posted, Refused int
	PostTime        Dist
	// BaselinePlaylist and LoadedPlaylist are the sizes of the last media
	// playlist the viewer read in each run: every DATERANGE overlapping
	// the window is in it.
	BaselinePlaylist, LoadedPlaylist int
	// BaselineCores and LoadedCores are the server process's CPU over each
	// window, in cores.
	BaselineCores, LoadedCores float64
	Rate                       int
	Duration                   time.Duration
}

func (r *CuesResult) String() string {
	return fmt.Sprintf("cue-to-viewer (%s), PART-TARGET %s, parts %s\n"+
		"  201 -> playlist with the DATERANGE  %s\n"+
		"  201 -> part with the emsg           %s\n"+
		"  cues missed %d\n"+
		"publish-to-deliverable, %s each (server alone in its process), part request blocked on the preload hint\n"+
		"  no cues        %s\n"+
		"  %d cues/s      %s\n"+
		"  p99 difference %s, p50 difference %s\n"+
		"publish-to-deliverable, blocking reload then part GET (same runs)\n"+
		"  no cues        %s\n"+
		"  %d cues/s      %s\n"+
		"  p99 difference %s, p50 difference %s\n"+
		"  POSTs 201 %d, refused %d, round trip %s\n"+
		"  media playlist %d bytes without cues, %d bytes with; server CPU %.3f cores without, %.3f with",
		r.Source, ms(r.PartTarget), ms(r.PartDur), r.ToPlaylist, r.ToPart, r.Missed,
		r.Duration, r.Baseline, r.Rate, r.Loaded,
		ms(r.Loaded.P99-r.Baseline.P99), ms(r.Loaded.P50-r.Baseline.P50),
		r.BaselineVia, r.Rate, r.LoadedVia,
		ms(r.LoadedVia.P99-r.BaselineVia.P99), ms(r.LoadedVia.P50-r.BaselineVia.P50),
		r.Posted, r.Refused, r.PostTime, r.BaselinePlaylist, r.LoadedPlaylist, r.BaselineCores, r.LoadedCores)
}

// postCue posts a product cue at "now" lasting durMs and returns when the
// 201 (all of it) was read.
func postCue(ctx context.Context, c *http.Client, url, id string, durMs int) (time.Time, error) {
	body := fmt.Sprintf(`{"v":1,"id":%q,"type":"product","product":{"sku":"SKU-%s","title":"Bench product",`+
		`"price":{"amount":"9.99","currency":"EUR"},"image_url":"https://cdn.example.com/p.jpg",`+
		`"url":"https://shop.example.com/p"},"at":"now","duration_ms":%d}`, id, id, durMs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	at := time.Now()
	if err != nil {
		return at, err
	}
	if resp.StatusCode != http.StatusCreated {
		return at, fmt.Errorf("%w %d: %s", errStatus, resp.StatusCode, bytes.TrimSpace(b))
	}
	return at, nil
}

// Cues measures what product cues cost viewers: how long after the
// producer's 201 a blocked viewer holds the cue, and whether 50 cues/s move
// publish-to-deliverable.
func Cues(ctx context.Context, cfg CuesConfig) (*CuesResult, error) {
	if cfg.Cues <= 0 {
		cfg.Cues = 100
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 50
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 60 * time.Second
	}
	src, err := loadSource(cfg.FLV)
	if err != nil {
		return nil, err
	}
	res := &CuesResult{Source: src.desc, Rate: cfg.Rate, Duration: cfg.Duration}
	if err := cueToViewer(ctx, src, cfg.Cues, res); err != nil {
		return nil, fmt.Errorf("cue-to-viewer: %w", err)
	}
	if err := deliverableUnderCues(ctx, cfg.FLV, cfg.Duration, cfg.Rate, res); err != nil {
		return nil, fmt.Errorf("publish-to-deliverable under cues: %w", err)
	}
	return res, nil
}

// cueIDs finds the cue ids in a playlist's DATERANGEs or a part's emsgs
// (the ID3 TXXX value is the cue JSON, in the clear).
var (
	dateRangeID = regexp.MustCompile(`#EXT-X-DATERANGE:ID="(c\d+)"`)
	emsgCueID   = regexp.MustCompile(`\{"v":1,"id":"(c\d+)","type"`)
)

// cueToViewer posts n cues at "now" while one viewer follows the live
// edge, and records when the viewer first held each cue.
func cueToViewer(ctx context.Context, src *source, n int, res *CuesResult) error {
	srv, err := startServer()
	if err != nil {
		return err
	}
	defer srv.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(ctx, srv.publishURL(), src, nil) }()
	client := newHTTPClient(4)
	if err := waitReady(ctx, client, srv.baseURL()); err != nil {
		return errors.Join(err, drainErr(pubErr))
	}

	var mu sync.Mutex
	inPlaylist := map[string]time.Time{}
	inPart := map[string]time.Time{}
	var partDurs []time.Duration
	var partTarget time.Duration
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		followCues(fctx, client, srv.baseURL(), func(pl []byte, at time.Time) {
			mu.Lock()
			if m := partTargetRe.FindSubmatch(pl); m != nil {
				if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
					partTarget = time.Duration(v * float64(time.Second))
				}
			}
			for _, m := range dateRangeID.FindAllSubmatch(pl, -1) {
				if _, ok := inPlaylist[string(m[1])]; !ok {
					inPlaylist[string(m[1])] = at
				}
			}
			mu.Unlock()
		}, func(part []byte, dur time.Duration, at time.Time) {
			mu.Lock()
			for _, m := range emsgCueID.FindAllSubmatch(part, -1) {
				if _, ok := inPart[string(m[1])]; !ok {
					inPart[string(m[1])] = at
				}
			}
			partDurs = append(partDurs, dur)
			mu.Unlock()
		})
	}()

	posted := map[string]time.Time{}
	for i := range n {
		// Posts fall anywhere in a part: the wait for the part's end is
		// part of the figure.
		wait := time.Duration(150+rand.IntN(300)) * time.Millisecond
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		id := fmt.Sprintf("c%d", i)
		at, err := postCue(ctx, client, srv.cuesURL(streamName), id, 500)
		if err != nil {
			return fmt.Errorf("POST %s: %w", id, err)
		}
		posted[id] = at
	}
	// The last cue's part: one more part duration, with a margin.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	stopFollow()
	<-followed
	cancel()
	if err := drainErr(pubErr); err != nil {
		return err
	}

	var toPl, toPart []time.Duration
	for id, at := range posted {
		p, okP := inPlaylist[id]
		q, okQ := inPart[id]
		if !okP || !okQ {
			res.Missed++
		}
		if okP {
			toPl = append(toPl, p.Sub(at))
		}
		if okQ {
			toPart = append(toPart, q.Sub(at))
		}
	}
	res.ToPlaylist, res.ToPart = dist(toPl), dist(toPart)
	res.PartDur = dist(partDurs).P50
	res.PartTarget = partTarget
	return nil
}

var (
	partDuration = regexp.MustCompile(`#EXT-X-PART:DURATION=([0-9.]+),URI="part(\d+)\.m4s"`)
	partTargetRe = regexp.MustCompile(`#EXT-X-PART-INF:PART-TARGET=([0-9.]+)`)
)

// followCues is a viewer of the live edge that hands every playlist and
// every new part, with the time it held all of it, to the callbacks.
func followCues(ctx context.Context, c *http.Client, base string,
	onPlaylist func(pl []byte, at time.Time), onPart func(part []byte, dur time.Duration, at time.Time)) {
	var plBuf, partBuf []byte
	var cur partPos
	want := partPos{msn: -1}
	for ctx.Err() == nil {
		url := base + "stream.m3u8"
		if want.msn >= 0 {
			url += fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", want.msn, want.idx)
		}
		if err := get(ctx, c, url, &plBuf); err != nil {
			continue
		}
		onPlaylist(plBuf, time.Now())
		pl, err := parsePlaylist(plBuf)
		if err != nil {
			continue
		}
		durs := map[int64]time.Duration{}
		for _, m := range partDuration.FindAllSubmatch(plBuf, -1) {
			d, _ := strconv.ParseFloat(string(m[1]), 64)
			n, _ := strconv.ParseInt(string(m[2]), 10, 64)
			durs[n] = time.Duration(d * float64(time.Second))
		}
		if want.msn < 0 {
			cur = pl.parts[len(pl.parts)-1]
		}
		for _, p := range pl.parts {
			if p.n <= cur.n && want.msn >= 0 {
				continue
			}
			if want.msn < 0 {
				break
			}
			if err := get(ctx, c, base+fmt.Sprintf("part%d.m4s", p.n), &partBuf); err != nil {
				break
			}
			onPart(partBuf, durs[p.n], time.Now())
			cur = p
		}
		want = partPos{msn: cur.msn, idx: cur.idx + 1}
		if pl.lastSeg >= cur.msn {
			// The segment ended with the part we have.
			want = partPos{msn: cur.msn + 1}
		}
	}
}

// cueLoad counts the cue POSTs of the load process's producers.
type cueLoad struct {
	mu              sync.Mutex
	posted, refused int
	rtt             []time.Duration
}

// deliverableUnderCues measures publish-to-deliverable on one server with
// the cue API, first without cues, then with rate cues/s. The server is
// alone in this process; its publisher, its two viewers (followEdge's
// hinted and via-playlist ones) and the cue producers run in a load
// process, so that their work and garbage are not the server's. The loaded
// window starts once the playlist holds a full window of cues.
func deliverableUnderCues(ctx context.Context, flv string, d time.Duration, rate int, res *CuesResult) error {
	srv, err := startServer()
	if err != nil {
		return err
	}
	defer srv.close()
	// At a part's end the load process reads the part and, for its two
	// viewers, two playlists of half a megabyte (50 cues/s): with a P per
	// core, the part waited for a P held in those reads' syscalls. Viewers
	// on other machines would not.
	lp, err := startLoad(ctx, "GOMAXPROCS=4")
	if err != nil {
		return err
	}
	defer lp.close()
	// The load process names its first stream s0.
	const name = "s0"
	rtmp, base := srv.liveURLs()
	if _, err := lp.call(loadCmd{Op: "streams", RTMP: rtmp, Base: base, FLV: flv, N: 1, Hinted: true}); err != nil {
		return err
	}
	client := newHTTPClient(2)
	if err := waitReady(ctx, client, base+name+"/"); err != nil {
		return err
	}
	measure := func(settle time.Duration) (loadReply, float64, int, error) {
		if !sleep(ctx, settle) {
			return loadReply{}, 0, 0, ctx.Err()
		}
		cpu0, t0 := cpuTime(), time.Now()
		r, err := lp.call(loadCmd{Op: "latency", Window: d})
		if err != nil {
			return r, 0, 0, err
		}
		cores := (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
		var pl []byte
		err = get(ctx, client, base+name+"/stream.m3u8", &pl)
		return r, cores, len(pl), err
	}
	r0, cores0, size0, err := measure(5 * time.Second)
	if err != nil {
		return fmt.Errorf("no cues: %w", err)
	}
	api := srv.cuesURL(name)
	if _, err := lp.call(loadCmd{Op: "cues", Base: api, Rate: rate}); err != nil {
		return err
	}
	cfg := srv.pkg.Config()
	full := time.Duration(cfg.WindowSegments)*cfg.TargetDuration + 2*time.Second
	r1, cores1, size1, err := measure(full)
	if err != nil {
		return fmt.Errorf("%d cues/s: %w", rate, err)
	}
	res.Baseline, res.BaselineVia, res.Loaded, res.LoadedVia = r0.Hinted, r0.Latency, r1.Hinted, r1.Latency
	res.BaselineCores, res.LoadedCores = cores0, cores1
	res.BaselinePlaylist, res.LoadedPlaylist = size0, size1
	res.Posted, res.Refused, res.PostTime = r1.Posted, r1.Refused, r1.PostTime
	return nil
}

package ingest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"

	"github.com/shopcast/shopcast/ingest"
)

// TestRTSPServerRefusals: each bad publish gets its RTSP status and a log
// line, while a good publisher goes on undisturbed.
func TestRTSPServerRefusals(t *testing.T) {
	log, logs := newLog(t)
	sink := newRecSink(nil)
	srv := &ingest.RTSPServer{Sink: sink, Logger: log,
		Auth: &ingest.Auth{Enabled: true, Keys: map[string]string{"s3cret": "shop1", "other": "shop2"}}}
	addr := startServer(t, srv, false)
	fx := loadFixture(t, "rtsp_h264_aac.ts")

	// The good publisher loops the clip until the test ends.
	good := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	if err := good.start("rtsp://" + addr + "/live/s3cret"); err != nil {
		t.Fatal(err)
	}
	defer good.close()
	frames := good.schedule()
	clipDur := fx.video[len(fx.video)-1].pts - fx.video[0].pts + 3000
	runUntil(t, func(ctx context.Context) {
		for i := int64(0); ctx.Err() == nil; i++ {
			if good.send(frames, i*clipDur, time.Millisecond) != nil {
				return
			}
		}
	})
	sink.wait(t, "the good publisher", func() bool { return len(sink.pubs) == 1 && len(sink.pubs[0].units) > 0 })
	before := len(sink.snapshot()[0].units)

	g711 := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}}},
	}}
	mpa := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: fx.sps, PPS: fx.pps}}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{&format.MPEG1Audio{}}},
	}}
	h264Only := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}}},
	}}

	cases := []struct {
		name   string
		user   string // user:password, if any
		path   string
		desc   *description.Session
		rawSDP string // sent by hand instead of desc
		status base.StatusCode
		log    string // in the log line besides the status
	}{
		{"wrong key in path", "", "/live/n0pe", h264Only, "", base.StatusUnauthorized, "unknown stream key"},
		{"wrong key as password", "enc:n0pe", "/live/shop1", h264Only, "", base.StatusUnauthorized, "unknown stream key"},
		{"key of another stream", "enc:other", "/live/shop1", h264Only, "", base.StatusForbidden, `publishes stream \"shop2\"`},
		{"outside live", "", "/other/s3cret", h264Only, "", base.StatusNotFound, "want /live/KEY"},
		{"no key", "", "/live", h264Only, "", base.StatusNotFound, "want /live/KEY"},
		{"bad SDP", "", "/live/s3cret", nil, "v=0\r\nnot an SDP at all\r\n", base.StatusBadRequest, "SDP"},
		{"G711", "", "/live/s3cret", g711, "", base.StatusUnsupportedMediaType, "unsupported codec: G711"},
		{"MPEG-1 audio", "", "/live/s3cret", mpa, "", base.StatusUnsupportedMediaType, "unsupported codec: MPEG-1/2 Audio"},
	}
	tcp := gortsplib.TransportTCP
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var status base.StatusCode
			if tc.desc != nil {
				c := &gortsplib.Client{Transport: &tcp}
				u := "rtsp://" + addr + tc.path
				if tc.user != "" {
					u = "rtsp://" + tc.user + "@" + addr + tc.path
				}
				err := c.StartRecording(u, tc.desc)
				if err == nil {
					c.Close()
					t.Fatal("publish accepted")
				}
				status = statusOf(err)
			} else {
				r := dialRTSP(t, addr)
				res, err := r.do(base.Announce, "rtsp://"+addr+tc.path,
					base.Header{"Content-Type": base.HeaderValue{"application/sdp"}}, []byte(tc.rawSDP))
				if err != nil {
					t.Fatal(err)
				}
				status = res.StatusCode
			}
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			line := logs.waitLine(t, `msg="rtsp publish refused"`, "status="+strconv.Itoa(int(tc.status)), tc.log)
			for _, key := range []string{"s3cret", "n0pe", "other"} {
				if strings.Contains(line, key) {
					t.Errorf("stream key %q is in the log: %s", key, line)
				}
			}
		})
	}

	sink.wait(t, "the good publisher going on", func() bool {
		return len(sink.pubs) == 1 && !sink.pubs[0].closed && len(sink.pubs[0].units) > before+100
	})
}

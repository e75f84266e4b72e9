package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
)

// RTSPServer accepts RTSP publishers: ANNOUNCE, SETUP and RECORD, with RTP
// interleaved in the TCP connection or over UDP, as ffmpeg, GStreamer and
// hardware encoders send them. Tracks may be H.264, H.265, AAC (RFC 3640
// mpeg4-generic, or RFC 6416 MP4A-LATM, which GStreamer's rtspclientsink and
// many cameras send) and Opus; each session becomes one publication of the
// Sink.
//
// The publish URL is rtsp://HOST:8554/live/KEY, where KEY is the stream key,
// resolved by Auth exactly as the RTMP key is (with authentication off it is
// the public stream name). An encoder that keeps secrets out of URLs may
// instead publish to rtsp://USER:KEY@HOST:8554/live/NAME: when the path
// component is not a key, the password of RTSP Basic authentication is taken
// as the key, and it must publish NAME. The user name is not checked.
//
// A publisher that comes back under the same name replaces its old session
// when Registry's rule says it is the same publisher (same key, same
// address, or the old session gone or silent), as with RTMP; another one is
// answered 409 to its ANNOUNCE.
type RTSPServer struct {
	// Address is the TCP address of the RTSP listener. It defaults to
	// ":8554".
	Address string
	// UDPRTPAddress and UDPRTCPAddress are the UDP addresses that receive
	// RTP and RTCP from publishers using the UDP transport. The RTP port must
	// be even and the RTCP port the next one (":8000", ":8001"). They default
	// to empty, which disables UDP: publishers must use TCP.
	UDPRTPAddress, UDPRTCPAddress string
	// Sink receives the publications.
	Sink Sink
	// Auth resolves stream keys. It defaults to nil: authentication off.
	Auth *Auth
	// Registry tracks the publisher of each stream name across protocols.
	// It defaults to a registry of this server's own.
	Registry *Registry
	// Logger receives connection and refusal lines. It defaults to
	// slog.Default().
	Logger *slog.Logger
	// ReadTimeout ends a recording session that sent nothing for this long.
	// It defaults to 10s.
	ReadTimeout time.Duration

	srv *gortsplib.Server
	ln  net.Listener
	log *slog.Logger
	reg *Registry
}

// Start opens the listeners.
func (s *RTSPServer) Start() error {
	if s.Sink == nil {
		return errors.New("rtsp server: no Sink")
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.reg = s.Registry
	if s.reg == nil {
		s.reg = NewRegistry(s.log)
	}
	addr := s.Address
	if addr == "" {
		addr = ":8554"
	}
	readTimeout := s.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = 10 * time.Second
	}
	srv := &gortsplib.Server{
		Handler:        &rtspServerHandler{s: s},
		RTSPAddress:    addr,
		UDPRTPAddress:  s.UDPRTPAddress,
		UDPRTCPAddress: s.UDPRTCPAddress,
		ReadTimeout:    readTimeout,
		// Basic only, so that the password (the stream key) can be read.
		AuthMethods: []auth.VerifyMethod{auth.VerifyMethodBasic},
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			s.ln = ln
			return ln, err
		},
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("rtsp server: %w", err)
	}
	s.srv = srv
	s.log.Info("rtsp server listening", "proto", "rtsp", "addr", s.ln.Addr().String(),
		"udp", s.UDPRTPAddress != "")
	return nil
}

// Addr returns the address of the RTSP listener, once started.
func (s *RTSPServer) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the listeners and ends every session; their publications are
// closed before Close returns.
func (s *RTSPServer) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// rtspRefusal is the error a handler returns with a refusal it has logged:
// gortsplib sends the response, then closes the connection.
type rtspRefusal struct{ err error }

func (r *rtspRefusal) Error() string { return r.err.Error() }
func (r *rtspRefusal) Unwrap() error { return r.err }

// rtspPublisher is the state of one publishing session.
type rtspPublisher struct {
	name    string
	remote  string
	log     *slog.Logger
	tracks  []*rtspTrack
	session *gortsplib.ServerSession

	pub     atomic.Pointer[rtspPublication]
	release func() // set by OnAnnounce
	// lastPacket is when the last RTP packet arrived (Unix ns), or the
	// ANNOUNCE before the first: the Registry lets another publisher
	// replace a session that stays silent.
	lastPacket atomic.Int64
}

func (p *rtspPublisher) lastActive() time.Time { return time.Unix(0, p.lastPacket.Load()) }

// kick ends the session for a newer publisher of the same name.
func (p *rtspPublisher) kick() {
	if pub := p.pub.Load(); pub != nil {
		pub.close()
	}
	p.session.Close()
}

// rtspServerHandler implements gortsplib's server callbacks, kept off
// RTSPServer's exported method set.
type rtspServerHandler struct {
	s *RTSPServer
}

func remoteOf(c *gortsplib.ServerConn) string {
	if c == nil || c.NetConn() == nil {
		return ""
	}
	return c.NetConn().RemoteAddr().String()
}

// refuse logs a refused request and returns its response. Stream keys are
// never logged: err must not contain one.
func (h *rtspServerHandler) refuse(c *gortsplib.ServerConn, status base.StatusCode, err error, args ...any) (*base.Response, error) {
	args = append([]any{"proto", "rtsp", "remote", remoteOf(c), "status", int(status), "err", err}, args...)
	h.s.log.Warn("rtsp publish refused", args...)
	if status == base.StatusUnauthorized {
		// gortsplib answers with a Basic challenge when the request had no
		// credentials, and closes the connection when they were wrong.
		return &base.Response{StatusCode: status}, liberrors.ErrServerAuth{}
	}
	return &base.Response{StatusCode: status}, &rtspRefusal{err: err}
}

// OnConnClose logs what gortsplib refused by itself (an ANNOUNCE whose SDP
// it could not parse is answered 400 before OnAnnounce) and unexpected ends.
func (h *rtspServerHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	var refusal *rtspRefusal
	var sdp liberrors.ErrServerSDPInvalid
	var ct liberrors.ErrServerContentTypeUnsupported
	var ctMissing liberrors.ErrServerContentTypeMissing
	switch err := ctx.Error; {
	case errors.As(err, &refusal), errors.As(err, new(liberrors.ErrServerAuth)):
		// Logged by refuse.
	case errors.As(err, &sdp), errors.As(err, &ct), errors.As(err, &ctMissing):
		h.s.log.Warn("rtsp publish refused", "proto", "rtsp", "remote", remoteOf(ctx.Conn),
			"status", int(base.StatusBadRequest), "err", err)
	case err == nil, errors.Is(err, io.EOF), errors.As(err, new(liberrors.ErrServerTerminated)),
		errors.Is(err, net.ErrClosed):
	default:
		h.s.log.Debug("rtsp connection closed", "proto", "rtsp", "remote", remoteOf(ctx.Conn), "err", err)
	}
}

// OnAnnounce authorises the publisher and checks its tracks.
func (h *rtspServerHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	name, key, status, err := h.authorize(ctx.Request, ctx.Path)
	if err != nil {
		if status == base.StatusUnauthorized {
			// Without credentials this is also the challenge of a client
			// that will retry with the key as its password.
			_, creds := ctx.Request.Header["Authorization"]
			return h.refuse(ctx.Conn, status, err, "credentials", creds)
		}
		return h.refuse(ctx.Conn, status, err)
	}
	if len(ctx.Description.Medias) == 0 {
		return h.refuse(ctx.Conn, base.StatusBadRequest, errors.New("SDP has no media"), "stream", name)
	}
	tracks := make([]*rtspTrack, 0, len(ctx.Description.Medias))
	for _, medi := range ctx.Description.Medias {
		t, err := newRTSPTrack(medi)
		if err != nil {
			// RFC 2326 11.1 / RFC 7231 6.5.13: the request's media type is
			// not supported. Supported are H.264, H.265, AAC and Opus.
			return h.refuse(ctx.Conn, base.StatusUnsupportedMediaType,
				fmt.Errorf("%s media: %w", medi.Type, err), "stream", name)
		}
		tracks = append(tracks, t)
	}
	remote := remoteOf(ctx.Conn)
	p := &rtspPublisher{
		name:    name,
		remote:  remote,
		log:     h.s.log.With("stream", name, "proto", "rtsp", "remote", remote),
		tracks:  tracks,
		session: ctx.Session,
	}
	p.lastPacket.Store(time.Now().UnixNano())

	// The name is taken at ANNOUNCE, so that a publisher refused is told
	// before it sets anything up (see Registry for who may replace whom).
	pubKey := ""
	if h.s.Auth != nil && h.s.Auth.Enabled {
		pubKey = key
	}
	release, err := h.s.reg.Admit(context.Background(), name, Publisher{
		Proto: "rtsp", Remote: remote, Key: pubKey, LastActive: p.lastActive, Kick: p.kick,
	})
	if err != nil {
		// RFC 9110 15.5.10: 409, the request conflicts with the state of
		// the resource (another session publishes it). The reason phrase
		// is what ffmpeg and GStreamer show; the holder is only logged.
		res, rerr := h.refuse(ctx.Conn, base.StatusCode(http.StatusConflict), err, "stream", name)
		res.StatusMessage = "Stream Is Already Being Published"
		return res, rerr
	}
	p.release = release
	ctx.Session.SetUserData(p)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// authorize returns the public stream name an ANNOUNCE publishes and the
// key that proved it, or the status to refuse it with.
func (h *rtspServerHandler) authorize(req *base.Request, path string) (string, string, base.StatusCode, error) {
	// The key is the path component after live/, as in the RTMP URL.
	key, err := streamKeyFromURL(&url.URL{Path: path})
	if err != nil {
		return "", "", base.StatusNotFound, fmt.Errorf("publish path: %w (want /live/KEY)", err)
	}
	name, err := h.s.Auth.Resolve(key)
	switch {
	case err == nil:
		return name, key, 0, nil
	case errors.Is(err, ErrInvalidName):
		return "", "", base.StatusBadRequest, err
	case !errors.Is(err, ErrUnknownKey):
		return "", "", base.StatusInternalServerError, err
	}

	// The path component is not a key: it may name the stream, with the key
	// as the Basic password.
	pass, ok := basicPassword(req)
	if !ok {
		return "", "", base.StatusUnauthorized, ErrUnknownKey
	}
	name, err = h.s.Auth.Resolve(pass)
	if err != nil {
		return "", "", base.StatusUnauthorized, ErrUnknownKey
	}
	if name != key {
		return "", "", base.StatusForbidden, fmt.Errorf("the key publishes stream %q, not the one in the path", name)
	}
	return name, pass, 0, nil
}

// basicPassword returns the password of a Basic Authorization header.
func basicPassword(req *base.Request) (string, bool) {
	v, ok := req.Header["Authorization"]
	if !ok {
		return "", false
	}
	var a headers.Authorization
	if a.Unmarshal(v) != nil || a.Method != headers.AuthMethodBasic {
		return "", false
	}
	return a.BasicPass, true
}

// OnSetup accepts the setup of announced medias. shopcast does not serve
// RTSP to players: a SETUP outside a publish session is answered 404.
func (h *rtspServerHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() != gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, nil, nil
}

// OnRecord starts the publication: the name is claimed (replacing an older
// publisher) and packets flow to the Sink.
func (h *rtspServerHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	p, ok := ctx.Session.UserData().(*rtspPublisher)
	if !ok {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil
	}
	// Only the medias the publisher set up carry packets.
	var tracks []*rtspTrack
	for _, medi := range ctx.Session.SetuppedMedias() {
		for _, t := range p.tracks {
			if t.media == medi {
				tracks = append(tracks, t)
			}
		}
	}
	if len(tracks) == 0 {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil
	}
	info := PublishInfo{Name: p.name, Proto: "rtsp", Remote: p.remote}
	pub := newRTSPPublication(h.s.Sink, info, ctx.Session, p.log, tracks, ctx.Session.Close)
	p.pub.Store(pub)

	pub.listen(func(medi *description.Media, f format.Format, cb func(*rtp.Packet)) {
		ctx.Session.OnPacketRTP(medi, f, func(pkt *rtp.Packet) {
			p.lastPacket.Store(time.Now().UnixNano())
			cb(pkt)
		})
	})
	transport := ""
	if tr := ctx.Session.SetuppedTransport(); tr != nil {
		transport = tr.String()
	}
	p.log.Info("rtsp publisher recording", "tracks", codecNames(tracks), "transport", transport)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose ends the publication of a recording session.
func (h *rtspServerHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	p, ok := ctx.Session.UserData().(*rtspPublisher)
	if !ok {
		return
	}
	// The publication ends before the name is free, so that the Sink sees
	// it close before a successor's starts.
	pub := p.pub.Load()
	if pub != nil {
		pub.close()
	}
	p.release()
	if pub == nil {
		return
	}
	p.log.Info("rtsp publisher gone", "err", ctx.Error)
}

// OnPacketsLost notes losses on UDP (or reordering past repair).
func (h *rtspServerHandler) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	if p, ok := ctx.Session.UserData().(*rtspPublisher); ok {
		if pub := p.pub.Load(); pub != nil {
			pub.warn("rtsp: RTP packets lost", "lost", ctx.Lost)
		}
	}
}

// OnDecodeError notes packets gortsplib could not read (bad RTP or RTCP).
func (h *rtspServerHandler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	if p, ok := ctx.Session.UserData().(*rtspPublisher); ok {
		if pub := p.pub.Load(); pub != nil {
			pub.warn("rtsp: undecodable packet", "err", ctx.Error)
		}
	}
}

package origin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/packager"
)

// PlayAuth signs and checks play URLs. With it, a viewer opens
//
//	/live/{name}/index.m3u8?token={token}
//
// and the origin answers the multivariant playlist with its variant URI
// moved under a path-scoped token, t/{path token}/stream.m3u8. The media
// playlist, init, segments and parts are then fetched as
//
//	/live/{name}/t/{path token}/{file}
//
// by the player's relative URI resolution alone, so their CDN cache key is
// the path and no query string has to be kept or stripped. The path token
// is the viewer's token with its expiry rounded down to a multiple of
// Window: every viewer whose token expires in the same window shares it, and
// so shares the edge's cache. Rounding down never grants more than the
// issuer signed. A missing, malformed, forged or expired token is a 403.
// docs/security.md has the token format and the cache-key rule.
type PlayAuth struct {
	// Secret is the HMAC-SHA256 key, at least 16 bytes. It is required. It
	// is never logged, and appears in no error.
	Secret []byte

	// TTL is the lifetime of the tokens NewToken makes, e.g. for a page that
	// embeds a player. It defaults to 2h.
	TTL time.Duration

	// Window is the granularity of path-token expiries: viewers whose
	// tokens expire within the same Window share media URLs and CDN cache
	// entries. It defaults to 5m.
	Window time.Duration

	now func() time.Time // tests replace it
}

// Defaults of the PlayAuth fields.
const (
	defaultPlayTokenTTL    = 2 * time.Hour
	defaultPlayTokenWindow = 5 * time.Minute
	// MinPlaySecretBytes is the shortest Secret Start accepts.
	MinPlaySecretBytes = 16
)

// Token parts and limits.
const (
	playTokenQuery  = "token" // the query parameter of the multivariant
	playTokenPrefix = "t"     // /live/{name}/t/{token}/{file}
	// maxPlayTokenLen bounds the token before any parsing: 12 digits of
	// expiry, a dot, 43 characters of MAC, with room to spare.
	maxPlayTokenLen = 96
	maxExpiryDigits = 12
	// playMACDomain separates play-token MACs from any other use of the
	// secret.
	playMACDomain = "shopcast-play-v1"
)

// Play token errors, all answered with 403.
var (
	// ErrPlayTokenMissing is a request without a token.
	ErrPlayTokenMissing = errors.New("play token missing")
	// ErrPlayTokenMalformed is a token that is not EXPIRY.MAC.
	ErrPlayTokenMalformed = errors.New("play token malformed")
	// ErrPlayTokenInvalid is a token whose MAC does not match its stream
	// name and expiry.
	ErrPlayTokenInvalid = errors.New("play token invalid")
	// ErrPlayTokenExpired is a token whose expiry has passed.
	ErrPlayTokenExpired = errors.New("play token expired")
)

// cacheForbidden lets an edge absorb a burst of requests with a bad token
// (the token is in the cache key) without holding the answer long.
const cacheForbidden = "public, max-age=1"

// Check reports whether a is usable: Secret long enough. Its error never
// shows the secret.
func (a *PlayAuth) Check() error {
	if len(a.Secret) < MinPlaySecretBytes {
		return errors.New("origin: play secret shorter than 16 bytes")
	}
	return nil
}

func (a *PlayAuth) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// Token returns the play token of stream name valid until exp (whole
// seconds, rounded down): "EXPIRY.MAC", where EXPIRY is Unix seconds in
// decimal and MAC is the unpadded base64url HMAC-SHA256 of
// "shopcast-play-v1\n{name}\n{EXPIRY}" under Secret.
func (a *PlayAuth) Token(name string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + a.mac(name, e)
}

// NewToken returns a token for stream name valid for TTL from now, its
// expiry rounded up to a multiple of Window so that viewers arriving within
// one Window get the same token (and the same multivariant from the CDN).
func (a *PlayAuth) NewToken(name string) string {
	w := int64(or(a.Window, defaultPlayTokenWindow) / time.Second)
	exp := a.clock().Add(or(a.TTL, defaultPlayTokenTTL)).Unix()
	if w > 0 {
		exp = (exp + w - 1) / w * w
	}
	return a.Token(name, time.Unix(exp, 0))
}

func (a *PlayAuth) mac(name, expiry string) string {
	m := hmac.New(sha256.New, a.Secret)
	m.Write([]byte(playMACDomain + "\n" + name + "\n" + expiry))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks token for stream name at now and returns its expiry.
func (a *PlayAuth) Verify(name, token string, now time.Time) (time.Time, error) {
	if token == "" {
		return time.Time{}, ErrPlayTokenMissing
	}
	if len(token) > maxPlayTokenLen {
		return time.Time{}, ErrPlayTokenMalformed
	}
	e, mac, ok := strings.Cut(token, ".")
	if !ok || e == "" || len(e) > maxExpiryDigits || e[0] == '0' || mac == "" {
		return time.Time{}, ErrPlayTokenMalformed
	}
	for i := 0; i < len(e); i++ {
		if e[i] < '0' || e[i] > '9' {
			return time.Time{}, ErrPlayTokenMalformed
		}
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return time.Time{}, ErrPlayTokenMalformed
	}
	// Compared as text in constant time: the MAC is canonical base64url.
	if !hmac.Equal([]byte(mac), []byte(a.mac(name, e))) {
		return time.Time{}, ErrPlayTokenInvalid
	}
	expiry := time.Unix(exp, 0)
	if !now.Before(expiry) {
		return time.Time{}, ErrPlayTokenExpired
	}
	return expiry, nil
}

// pathToken returns the token that media URLs carry for a viewer whose
// token for name expires at exp: exp rounded down to a multiple of Window,
// or exp itself when that would already have passed.
func (a *PlayAuth) pathToken(name string, exp, now time.Time) string {
	w := int64(or(a.Window, defaultPlayTokenWindow) / time.Second)
	e := exp.Unix()
	if w > 0 {
		if r := e / w * w; r > now.Unix() {
			e = r
		}
	}
	return a.Token(name, time.Unix(e, 0))
}

// playGrant is what an authorized request carries to its response: the
// path token to put into a multivariant requested with a query token.
type playGrant struct {
	prefix string // "t/{path token}/", or "" when the URIs need no change
}

// authorize checks the token of a /live/ request. It returns the escaped
// path with any token segments removed, for parseLivePath, and the grant to
// apply to the response. A request whose path does not parse is passed on
// untouched (serveLive answers it 404); one without a valid token is
// answered 403 here, and ok is false.
func (a *PlayAuth) authorize(w http.ResponseWriter, r *http.Request) (escaped string, g playGrant, ok bool) {
	escaped = r.URL.EscapedPath()
	var token string
	rest, _ := strings.CutPrefix(escaped, livePrefix)
	segs := strings.Split(rest, "/")
	switch {
	case len(segs) == 4 && segs[1] == playTokenPrefix:
		// /live/{name}/t/{token}/{file}
		token, escaped = segs[2], livePrefix+segs[0]+"/"+segs[3]
	case len(segs) == 2 && segs[1] == hlsname.Multivariant:
		// /live/{name}/index.m3u8?token={token}
		token = queryValue(r.URL.RawQuery, playTokenQuery)
	}
	name, _, parsed := parseLivePath(escaped)
	if !parsed {
		return escaped, playGrant{}, true // not a stream file: 404
	}
	now := a.clock()
	exp, err := a.Verify(name, token, now)
	if err != nil {
		w.Header().Set("Cache-Control", cacheForbidden)
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return "", playGrant{}, false
	}
	if len(segs) == 2 {
		g.prefix = playTokenPrefix + "/" + a.pathToken(name, exp, now) + "/"
	}
	return escaped, g, true
}

// queryValue returns the first value of key in a raw query, or "".
func queryValue(rawQuery, key string) string {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k != key {
			continue
		}
		if s, err := url.QueryUnescape(v); err == nil {
			return s
		}
		return ""
	}
	return ""
}

// apply moves the relative URIs of a multivariant playlist under the grant's
// path token. The packager's Response is shared by every viewer, so a
// rewritten copy is returned; its gzip form is dropped (a multivariant is a
// few hundred bytes).
func (g playGrant) apply(resp *packager.Response) *packager.Response {
	if g.prefix == "" || resp.Kind != packager.KindMultivariant {
		return resp
	}
	out := *resp
	out.Body = prefixURIs(resp.Body, g.prefix)
	out.Gzip = nil
	return &out
}

// prefixURIs puts prefix before every relative URI of a playlist: the URI
// lines and the URI="..." attributes of tags (EXT-X-MEDIA, EXT-X-I-FRAME-
// STREAM-INF). Absolute URIs and absolute paths are left alone.
func prefixURIs(body []byte, prefix string) []byte {
	var b strings.Builder
	b.Grow(len(body) + 4*len(prefix))
	lines := strings.SplitAfter(string(body), "\n")
	for _, line := range lines {
		text := strings.TrimRight(line, "\r\n")
		switch {
		case text == "":
			b.WriteString(line)
		case text[0] != '#':
			if relativeURI(text) {
				b.WriteString(prefix)
			}
			b.WriteString(line)
		default:
			for {
				i := strings.Index(line, `URI="`)
				if i < 0 {
					break
				}
				i += len(`URI="`)
				b.WriteString(line[:i])
				line = line[i:]
				if relativeURI(line) {
					b.WriteString(prefix)
				}
			}
			b.WriteString(line)
		}
	}
	return []byte(b.String())
}

// relativeURI reports whether the URI at the start of s is a relative path
// reference (no scheme, not starting with "/").
func relativeURI(s string) bool {
	if strings.HasPrefix(s, "/") {
		return false
	}
	end := strings.IndexAny(s, `/?#"`)
	if end < 0 {
		end = len(s)
	}
	return !strings.Contains(s[:end], ":")
}

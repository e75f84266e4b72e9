package steering

import (
	"net/url"
	"strconv"
	"strings"
)

// Rewrite turns a stream's multivariant playlist into its steered form.
// requestPath is the path the playlist was asked for (with any play-token
// prefix), against which the relative variant URIs resolve; each pathway
// gets them resolved on its own base URL. The rules it follows:
//
//   - RFC 8216bis 4.4.6.6: EXT-X-CONTENT-STEERING carries SERVER-URI, the
//     steering manifest, and PATHWAY-ID, the pathway to use until the
//     first manifest arrives. Both name the first pathway of Priority, so
//     a player that starts while an origin is down starts elsewhere.
//   - 4.4.6.2: every variant carries its PATHWAY-ID, and the same
//     STABLE-VARIANT-ID on every pathway; the specification requires the
//     variants of the pathways to be the same but for their URIs, so
//     every other attribute is copied unchanged.
//
// The variant tags are copied from the packager's rendering, so BANDWIDTH,
// CODECS and the rest are identical across pathways by construction. Other
// lines (EXT-X-MEDIA, which the packager does not write) are kept once.
func (s *Steering) Rewrite(stream, requestPath string, body []byte) []byte {
	type variant struct{ tag, uri string }
	var head, tail []string
	var vs []variant
	lines := strings.Split(strings.TrimRight(string(body), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		switch {
		case strings.HasPrefix(l, "#EXT-X-STREAM-INF:") && i+1 < len(lines):
			vs = append(vs, variant{tag: l, uri: strings.TrimRight(lines[i+1], "\r")})
			i++
		case strings.HasPrefix(l, "#EXT-X-CONTENT-STEERING:"):
			// already steered: replaced below
		case len(vs) == 0:
			head = append(head, l)
		default:
			tail = append(tail, l)
		}
	}
	if len(vs) == 0 {
		return body // nothing to steer yet (no variant published)
	}
	prio := s.Priority()
	first := prio[0]
	var b strings.Builder
	b.Grow(len(body)*(len(s.cfg.Pathways)+1) + 256)
	for _, l := range head {
		b.WriteString(l + "\n")
	}
	b.WriteString(`#EXT-X-CONTENT-STEERING:SERVER-URI="` + manifestURL(first, stream) + `",PATHWAY-ID="` + first.ID + "\"\n")
	ids := stableIDs(len(vs), func(i int) string { return vs[i].uri })
	for _, p := range s.cfg.Pathways {
		base := resolveBase(p, requestPath)
		for i, v := range vs {
			b.WriteString(v.tag + `,PATHWAY-ID="` + p.ID + `",STABLE-VARIANT-ID="` + ids[i] + "\"\n")
			b.WriteString(resolve(base, v.uri) + "\n")
		}
	}
	for _, l := range tail {
		b.WriteString(l + "\n")
	}
	return []byte(b.String())
}

// resolveBase is the URL the multivariant playlist would have on a
// pathway: the pathway's base URL with the request's path under it.
func resolveBase(p Pathway, requestPath string) *url.URL {
	u, err := url.Parse(strings.TrimRight(p.URL, "/") + requestPath)
	if err != nil {
		u, _ = url.Parse(p.URL) // ValidatePathways parsed it
	}
	return u
}

// resolve makes a variant URI absolute on base; an absolute URI stays.
func resolve(base *url.URL, uri string) string {
	ref, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	return base.ResolveReference(ref).String()
}

// stableIDs derives each variant's STABLE-VARIANT-ID from its relative
// URI, so that it stays the same across reloads of the playlist. RFC
// 8216bis 4.4.6.2: the value is a string of [a..z], [A..Z], [0..9], '+',
// '/', '=', '.', '-' and '_'.
func stableIDs(n int, uri func(int) string) []string {
	out := make([]string, n)
	seen := map[string]bool{}
	for i := range n {
		u := uri(i)
		if q := strings.IndexAny(u, "?#"); q >= 0 {
			u = u[:q]
		}
		u = strings.TrimSuffix(u, ".m3u8")
		id := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
				r == '+', r == '/', r == '=', r == '.', r == '-', r == '_':
				return r
			}
			return '_'
		}, u)
		if id == "" || seen[id] {
			id += "-" + strconv.Itoa(i)
		}
		seen[id] = true
		out[i] = id
	}
	return out
}

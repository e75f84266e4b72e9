package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errRTMPE refuses encrypted RTMP (handshake version 6): rtmpGuard cannot
// see the chunk headers inside it, and no current encoder needs it.
var errRTMPE = errors.New("encrypted RTMP (RTMPE) is not supported")

// rtmpGuard follows the RTMP chunk headers of the bytes a client sends,
// before gortmplib reads them, and refuses AMF messages larger than a limit.
//
// gortmplib's AMF0 decoder recurses once per nesting level without a depth
// limit, and it accepts messages up to 10 MiB: a multi-megabyte message of
// nested arrays overflows the goroutine stack, which is fatal to the whole
// process (not a panic that recover() could catch). Capping AMF messages
// (connect, publish, onMetaData, onCuePoint are a few hundred bytes) keeps
// the nesting, and so the stack, small.
//
// The parser mirrors gortmplib v1.0.1's rawmessage.Reader (chunk types 0-3,
// extended timestamps, Set Chunk Size, Abort Message; RTMP specification
// 5.3 and 5.4) and is checked against it by FuzzRTMPGuard. Where it finds an
// error, gortmplib would fail on the same bytes.
type rtmpGuard struct {
	maxAMF uint32

	handshake int // handshake bytes still to pass: C0, C1, C2
	first     bool

	chunkSize uint32
	streams   map[byte]*guardStream

	hdr  []byte       // partial chunk header
	cur  *guardStream // stream of the chunk whose body is passing
	body uint32       // body bytes of the current chunk still to pass
	err  error
}

// guardStream is the state gortmplib keeps per chunk stream, without the
// bodies (except of the two control messages that change the framing).
type guardStream struct {
	started  bool // a type 0 chunk was seen ("curTimestampAvailable")
	typ      uint8
	bodyLen  uint32
	recv     uint32
	extTS    bool
	chunkLen uint32 // body length of the chunk being passed
	ctl      []byte // body of a Set Chunk Size or Abort Message
	sniff    bool   // the first body byte decides if the body is AMF
}

// gortmplib's rawmessage limits.
const (
	guardMaxBodySize  = 10 * 1024 * 1024
	guardInitialChunk = 128
	guardHandshake    = 1 + 1536 + 1536
)

func newRTMPGuard(maxAMF int) *rtmpGuard {
	return &rtmpGuard{
		maxAMF:    uint32(maxAMF),
		handshake: guardHandshake,
		first:     true,
		chunkSize: guardInitialChunk,
		streams:   make(map[byte]*guardStream),
	}
}

// isAMFMessage reports the message types whose body is AMF (RTMP
// specification 7.1): data, shared object and command messages in AMF3 and
// AMF0, and aggregates.
func isAMFMessage(typ uint8) bool {
	return typ >= 15 && typ <= 20 || typ == 22
}

// isVideoMetadata reports, from the first byte of a video message body, an
// Enhanced RTMP metadata packet (IsExHeader set, VideoPacketType 4), whose
// body gortmplib decodes as AMF0.
func isVideoMetadata(first byte) bool {
	return first&0x80 != 0 && first&0x0f == 4
}

// feed inspects bytes received from the client, in order. After an error,
// the connection must be closed.
func (g *rtmpGuard) feed(p []byte) error {
	for len(p) > 0 && g.err == nil {
		switch {
		case g.handshake > 0:
			if g.first {
				g.first = false
				if p[0] == 6 {
					g.err = errRTMPE
					break
				}
			}
			n := min(g.handshake, len(p))
			g.handshake -= n
			p = p[n:]

		case g.body > 0:
			n := min(g.body, uint32(len(p)))
			if g.cur.sniff {
				g.cur.sniff = false
				if isVideoMetadata(p[0]) {
					g.err = fmt.Errorf("video metadata message of %d bytes exceeds the %d-byte limit", g.cur.bodyLen, g.maxAMF)
					break
				}
			}
			if (g.cur.typ == 1 || g.cur.typ == 2) && len(g.cur.ctl) <= 4 {
				// Keep up to 5 bytes: enough to tell a valid 4-byte body.
				g.cur.ctl = append(g.cur.ctl, p[:min(n, uint32(5-len(g.cur.ctl)))]...)
			}
			g.body -= n
			p = p[n:]
			if g.body == 0 {
				g.err = g.chunkDone()
			}

		default:
			need := g.headerLen(p)
			n := min(need-len(g.hdr), len(p))
			g.hdr = append(g.hdr, p[:n]...)
			p = p[n:]
			if len(g.hdr) == g.headerLen(nil) {
				g.err = g.header()
				g.hdr = g.hdr[:0]
			}
		}
	}
	return g.err
}

// headerLen returns the length of the chunk header being collected in g.hdr
// (the first bytes may still be in p), as far as it is known.
func (g *rtmpGuard) headerLen(p []byte) int {
	var first [4]byte // the basic header and the timestamp field
	n := copy(first[:], g.hdr)
	n += copy(first[n:], p)
	b := first[:n]
	if len(b) == 0 {
		return 1
	}
	switch b[0] >> 6 {
	case 0:
		n = 12
	case 1:
		n = 8
	case 2:
		n = 4
	default:
		if s := g.streams[b[0]&0x3f]; s != nil && s.extTS {
			return 5
		}
		return 1
	}
	if len(b) < 4 {
		return n // the timestamp field is not known yet
	}
	if uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]) >= 0xffffff {
		n += 4
	}
	return n
}

// header applies a complete chunk header, as gortmplib's readMessage does.
func (g *rtmpGuard) header() error {
	h := g.hdr
	fmtType := h[0] >> 6
	csid := h[0] & 0x3f
	if csid < 2 {
		return fmt.Errorf("extended chunk stream IDs are not supported")
	}
	s := g.streams[csid]
	if s == nil {
		s = &guardStream{}
		g.streams[csid] = s
	}

	var chunkLen uint32
	switch fmtType {
	case 0, 1:
		if fmtType == 1 && !s.started {
			return fmt.Errorf("type 1 chunk without previous chunk")
		}
		if s.recv != 0 {
			return fmt.Errorf("type %d chunk but expected type 3 chunk", fmtType)
		}
		s.started = true
		s.bodyLen = uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6])
		s.typ = h[7]
		s.extTS = uint32(h[1])<<16|uint32(h[2])<<8|uint32(h[3]) >= 0xffffff
		if s.bodyLen > guardMaxBodySize {
			return fmt.Errorf("body size (%d) exceeds maximum (%d)", s.bodyLen, guardMaxBodySize)
		}
		if isAMFMessage(s.typ) && s.bodyLen > g.maxAMF {
			return fmt.Errorf("AMF message (type %d) of %d bytes exceeds the %d-byte limit", s.typ, s.bodyLen, g.maxAMF)
		}
		s.ctl = s.ctl[:0]
		chunkLen = min(s.bodyLen, g.chunkSize)

	case 2:
		if !s.started {
			return fmt.Errorf("type 2 chunk without previous chunk")
		}
		if s.recv != 0 {
			return fmt.Errorf("type 2 chunk but expected type 3 chunk")
		}
		s.extTS = uint32(h[1])<<16|uint32(h[2])<<8|uint32(h[3]) >= 0xffffff
		s.ctl = s.ctl[:0]
		chunkLen = min(s.bodyLen, g.chunkSize)

	default:
		if s.recv != 0 {
			chunkLen = min(s.bodyLen-s.recv, g.chunkSize)
		} else {
			if !s.started {
				return fmt.Errorf("type 3 chunk without previous chunk")
			}
			s.ctl = s.ctl[:0]
			chunkLen = min(s.bodyLen, g.chunkSize)
		}
	}

	if s.recv == 0 {
		// A message starts: a large video message must not be metadata.
		s.sniff = s.typ == 9 && s.bodyLen > g.maxAMF
	}
	s.chunkLen = chunkLen
	g.cur = s
	g.body = chunkLen
	if chunkLen == 0 {
		return g.chunkDone()
	}
	return nil
}

// chunkDone accounts for a complete chunk body and applies control
// messages, which gortmplib's message.Reader does once the message is read.
func (g *rtmpGuard) chunkDone() error {
	s := g.cur
	s.recv += s.chunkLen
	if s.recv != s.bodyLen {
		return nil
	}
	s.recv = 0

	switch s.typ {
	case 1: // Set Chunk Size, RTMP specification 5.4.1
		if len(s.ctl) != 4 {
			return fmt.Errorf("invalid set chunk size body size")
		}
		v := binary.BigEndian.Uint32(s.ctl)
		if v > guardMaxBodySize {
			return fmt.Errorf("chunk size (%d) exceeds maximum (%d)", v, guardMaxBodySize)
		}
		g.chunkSize = v

	case 2: // Abort Message, RTMP specification 5.4.2
		if len(s.ctl) != 4 {
			return fmt.Errorf("invalid abort message body size")
		}
		v := binary.BigEndian.Uint32(s.ctl)
		if v >= 2 && v <= 63 {
			if a := g.streams[byte(v)]; a != nil && a.recv != 0 {
				a.recv, a.bodyLen, a.ctl = 0, 0, a.ctl[:0]
			}
		}
	}
	s.ctl = s.ctl[:0]
	return nil
}

package testpub

import (
	"encoding/binary"
)

// RTMP message type of an AMF0 data message (RTMP specification 7.1.2).
const msgTypeDataAMF0 = 18

// rawChunkStreamID is the chunk stream of the messages Client writes itself
// (data messages and WriteMessage). gomedia's client writes on chunk streams
// 2, 3, 5, 6 and 8; each message here has a full (type 0) header, so they
// can share one.
const rawChunkStreamID = 7

// publishStreamID is the message stream of the publication: gomedia's client
// keeps the ID from the createStream result private, and the servers this
// package talks to (gortmplib, nginx-rtmp, ffmpeg) answer 1.
const publishStreamID = 1

// chunkMessage splits one message into RTMP chunks (RTMP specification
// 5.3.1): a type 0 chunk with the full message header, then type 3 chunks.
// gomedia's client has no call to write a data message, so this is written
// here.
func chunkMessage(csid byte, typ byte, streamID uint32, ts uint32, body []byte, chunkSize int) []byte {
	extended := ts >= 0xffffff
	hdrTS := ts
	if extended {
		hdrTS = 0xffffff
	}

	out := make([]byte, 0, len(body)+16+(len(body)/chunkSize+1)*5)
	out = append(out, csid&0x3f) // fmt 0
	out = append(out, byte(hdrTS>>16), byte(hdrTS>>8), byte(hdrTS))
	out = append(out, byte(len(body)>>16), byte(len(body)>>8), byte(len(body)))
	out = append(out, typ)
	out = binary.LittleEndian.AppendUint32(out, streamID) // the only little-endian field
	if extended {
		out = binary.BigEndian.AppendUint32(out, ts)
	}

	for {
		n := min(len(body), chunkSize)
		out = append(out, body[:n]...)
		body = body[n:]
		if len(body) == 0 {
			return out
		}
		out = append(out, 0xc0|csid&0x3f) // fmt 3
		if extended {
			out = binary.BigEndian.AppendUint32(out, ts)
		}
	}
}

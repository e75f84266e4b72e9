package ingest

import (
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// rtmpDataTap sits between gortmplib's Reader and its connection once tracks
// are known, and hands AMF0 data messages (onCuePoint, onTextData, ...) to
// the publication: gortmplib's Reader.Read silently drops them.
//
// gortmplib's message.DataAMF0 has no timestamp (the chunk header's
// timestamp is dropped while decoding), so a data message gets the DTS of
// the last audio or video message read before it. Encoders send data
// messages interleaved with media at the current media time, so this is
// within one frame of the timestamp the publisher wrote.
type rtmpDataTap struct {
	gortmplib.Conn

	onData func(*Data)

	lastDTS time.Duration
}

func (t *rtmpDataTap) Read() (message.Message, error) {
	msg, err := t.Conn.Read()
	if err != nil {
		return nil, err
	}

	switch m := msg.(type) {
	case *message.DataAMF0:
		if d := dataFromAMF(m.Payload, t.lastDTS); d != nil {
			t.onData(d)
		}
	default:
		if dts, ok := messageDTS(msg); ok {
			t.lastDTS = dts
		}
	}
	return msg, nil
}

// dataFromAMF builds a Data from the payload of an AMF0 data message, or
// returns nil for stream metadata (onMetaData, with or without
// @setDataFrame), which describes the encoder and that the packager does not
// need.
func dataFromAMF(payload []any, ts time.Duration) *Data {
	if len(payload) == 0 {
		return nil
	}
	name, ok := payload[0].(string)
	if !ok {
		return nil
	}
	args := payload[1:]
	// "@setDataFrame" asks the server to store the message that follows it;
	// the message's own name comes next.
	if name == "@setDataFrame" && len(args) > 0 {
		if inner, ok := args[0].(string); ok {
			name, args = inner, args[1:]
		}
	}
	if name == "onMetaData" {
		return nil
	}

	values := make([]any, len(args))
	for i, a := range args {
		values[i] = convertAMF(a)
	}
	return &Data{Name: name, Time: ts, Values: values}
}

// messageDTS returns the timestamp of an audio or video message.
func messageDTS(msg message.Message) (time.Duration, bool) {
	switch m := msg.(type) {
	case *message.VideoExMultitrack:
		return messageDTS(m.Wrapped)
	case *message.AudioExMultitrack:
		return messageDTS(m.Wrapped)
	case *message.Video:
		// An end-of-sequence marker (fastStart's among them) is no frame.
		if m.Type == message.VideoTypeEOS {
			return 0, false
		}
		return m.DTS, true
	case *message.Audio:
		return m.DTS, true
	case *message.VideoExCodedFrames:
		return m.DTS, true
	case *message.VideoExFramesX:
		return m.DTS, true
	case *message.AudioExCodedFrames:
		return m.DTS, true
	}
	return 0, false
}

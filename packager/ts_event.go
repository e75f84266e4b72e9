package packager

import "errors"

// errShortNALU is a video sample whose NAL unit lengths do not add up.
var errShortNALU = errors.New("mpeg-ts: malformed length-prefixed NAL unit")

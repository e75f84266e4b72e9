package cues

import "embed"

// SDK holds the player SDK, sdk/shopcast-cues.js: a dependency-free ES
// module that turns the metadata cues of a video element into cuestart and
// cueend events. The origin serves it at /sdk/shopcast-cues.js
// (http.FileServerFS(cues.SDK) maps that path to this file).
//
//go:embed sdk/shopcast-cues.js
var SDK embed.FS

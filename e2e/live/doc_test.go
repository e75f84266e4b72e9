// Package live checks a running shopcast end to end: real publishers (the
// repo's RTMP client, ffmpeg over RTMP and RTSP, Enhanced RTMP codecs, an
// RTSP camera pulled by rtsp_pull) into internal/server, read back by
// gohlslib's Client and by parsers nobody here wrote (mp4ff, hls-m3u8);
// product cues, faults, restarts, metrics and security on the same server.
// Servers start in this process through internal/e2etest, several per test
// when needed. Browser and CDN edge tests are in e2e.
package live

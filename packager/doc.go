// Package packager turns publishers' access units into LL-HLS: fMP4 parts,
// segments and init segments, and the playlists that list them (RFC
// 8216bis), plus a legacy MPEG-TS rendition. The ingest package feeds it
// (Manager is its Sink); the origin reads from it (Manager.Fetch is its
// Source). File names are package hlsname's.
//
// # Objects
//
// From the publisher to the viewer:
//
//   - Manager (manager.go) holds the streams by name, the Config and the
//     count of blocked requests across streams.
//   - Stream (stream.go) is one name's timeline: the complete segments
//     still servable (segs), the open segment, the parts by number, the
//     init segments by name, the playlist caches, the events and the TS
//     rendition. It outlives its publishers: a publisher that comes back
//     within GracePeriod continues it after an EXT-X-DISCONTINUITY; after
//     that it ends (EXT-X-ENDLIST) and stays servable for EndedLinger. A
//     publisher coming back to an ended stream starts a new Stream,
//     numbered on from the old one so that no URL is reused.
//   - publication (publication.go) is one publisher's session: its tracks,
//     its init segment (init{N}.mp4, N counting the stream's publications)
//     and the clock mapping its timestamps to the stream's media time. A
//     new publisher of the same name supersedes the current one.
//   - track (track.go) puts one ingest track's units on a continuous fMP4
//     timeline as samples, rebasing timestamp jumps. The lead track (video
//     if any) decides where parts and segments end; the others' samples
//     wait in publication.pending for the next part.
//   - part (segment.go) is a partial segment, part{N}.m4s with N counting
//     across the stream: one moof+mdat of every track's pending samples,
//     closed by publication.closePart on the lead frame after which one
//     more would take it past PART-TARGET, or that ends its segment.
//   - segment (segment.go) is seg{MSN}.m4s: the parts from one lead
//     keyframe to the next past TargetDuration. When it closes its body is
//     its parts' bytes back to back and the parts are re-pointed into it,
//     so the media is kept once. Parts and segments never change once
//     published; every viewer gets the same slices.
//   - The playlists (playlist_media.go, playlist_multivariant.go,
//     playlist_ts.go) are rendered once per stream version (Stream.version,
//     bumped by notify on every change) and per _HLS_skip form, in two
//     steps (Stream.cached): take copies out under the lock what the
//     playlist says (a draft), build makes the bytes after the lock is let
//     go, and every request for that version shares them (and one gzip of
//     them, made on first demand).
//
// Writing: ingest calls publication.WriteUnit, which takes s.mu for
// writing, builds the sample and, on the lead track, may close a part
// (Stream.addPart) and a segment (Stream.closeSegment, which also trims the
// window and completes the TS segment). Each publication step calls
// Stream.notify, which wakes every blocked request.
//
// Reading: Manager.Fetch parses the file name and calls the Stream's fetch
// method (fetch.go, ts_fetch.go) under s.mu read-locked. A blocking
// playlist request (_HLS_msn, RFC 8216bis 6.2.5.2) or a request for the
// preload-hinted part (6.2.6) waits in Stream.waitFor: it releases the
// read lock while it waits on the stream's changed channel, for at most
// three target durations (then 503), counted against MaxBlockedRequests
// and the fair shares MaxBlockedPerStream and MaxBlockedPerClient
// (Manager.block, whose per-client map has its own small mutex, taken by
// nothing else).
// Fetch makes the playlist's bytes after the fetch method returned, so no
// render holds s.mu.
//
// # Locks
//
// In the order they may be taken; never take an earlier one while holding
// a later one:
//
//  1. Manager.mu guards the stream map. Publish holds it while it attaches
//     the publication (taking the stream's s.mu), so a stream cannot end or
//     be removed in between. Manager.remove lets it go before shutting the
//     stream down.
//  2. Stream.mu (s.mu), a RWMutex, guards everything of a stream but its
//     counters (streamStats, atomics, read by Manager.Stats without a
//     lock). The publisher, the grace and linger timers and the event API
//     write under Lock; viewers read under RLock, so that a part's release
//     wakes a thousand blocked requests without queueing them one by one.
//     Hence nothing a viewer does may take it for writing, and a writer
//     must not retake it where viewers are waiting on the part it is about
//     to publish (see Stream.AddEvent).
//  3. Stream.renderMu is taken under s.mu (read-locked at least) by
//     Stream.cached, so that one reader takes a playlist version while the
//     others wait for it: take runs for readers under RLock yet writes, the
//     DATERANGE lines the events keep rendered (event.go) and the cache
//     slot. It is never held while the bytes are built.
//  4. tsRendition.mu (s.ts.mu) guards the TS muxer's state. It is taken
//     under s.mu held for writing (writePart, closeSegment) and, by the
//     publisher, with s.mu released (drain), which muxes the part queued by
//     writePart after the fMP4 part is out. Fields changed under both
//     (pub, tracks, id3, segs) may be read under either; the TS fetches
//     read them under s.mu.
//
// Blocking reads hold no lock while they wait; lazyGzip and the rendered
// playlist's ready channel are waited on with no lock held.
//
// # The TS rendition
//
// tsRendition (ts_rendition.go, ts_mux.go) is a non-low-latency HLS
// rendition for players without fMP4: seg{MSN}.ts, aligned one to one with
// the fMP4 segments (same MSN, duration, discontinuities, program
// date-time), listed by stream_ts.m3u8 and index_ts.m3u8, which no fMP4
// playlist references. closePart hands it the samples of every part it
// publishes (writePart) and closeSegment completes its segment, so it
// needs no input of its own. H.264, H.265 and AAC fit; a publication with
// none of them has no TS segments.
//
// # Variants (the ladder)
//
// A stream may have more renditions of its picture than the source's: a
// publication with ingest.PublishInfo.Variant set (OBS's multitrack
// video, the ffmpeg ladder) is one video track on the source
// publication's clock, and variant.go packages it as a follower. The
// source's lead track alone decides where parts and segments end; when the
// source publishes part N covering media time [from, to), each variant
// publishes its own part N, holding its video samples in that range, the
// same audio samples as the source's part N and the same emsg boxes,
// byte for byte. Same MSN and part number, same media time, in every
// rendition: a player switching renditions asks the same numbers and loses
// or repeats no cue. A variant's part is published once the variant has a
// frame reaching the end of the source's (so it lags the source by its
// encoder's delay; a multitrack connection's frames come together, and its
// parts at once), at most a frame later.
//
// Audio is muxed into every variant's parts rather than served as one
// EXT-X-MEDIA audio rendition: a low-latency viewer then loads one part per
// part duration instead of two (at 3 parts a second, half the requests and
// half the blocking preload-hint waits, MaxBlockedPerClient counted once),
// a switch reloads no audio and cannot lose audio/video sync across two
// playlists, and every player that plays the source plays a variant
// (hls.js, Shaka, Safari and gohlslib handle muxed variants alike). It
// costs the audio's bytes once per variant in the origin's memory, about
// 128 kbit/s each, against the 0.6-6 Mbit/s of the video beside it.
//
// A variant joins at the first source segment whose start it has a
// keyframe on (within half a frame); its playlist starts there. A segment
// it cannot fill (its publisher left or arrived mid-segment, it had no
// keyframe at the segment's start) is listed with EXT-X-GAP, its missing
// parts with GAP=YES, so that its playlist keeps the source's numbering;
// while a variant has no publisher, the multivariant playlist leaves it
// out, and once its window holds nothing it published it goes. Publishing
// a variant needs a live source (ErrNoSource); when the source closes or
// is superseded, the variant publishes what it can and its writes fail
// with ErrSourceGone. Each media playlist carries an
// EXT-X-RENDITION-REPORT of every other rendition's live edge, and the
// blocked-request limits count a stream's requests across its renditions.
// The TS rendition stays the source's alone: it serves players without
// fMP4, which are not the ones that adapt.
//
// # The aligned timeline
//
// With Config.AlignedTimeline (aligned.go, docs/redundancy.md) numbers
// come from time, so that two nodes fed one encoder serve the same
// numbers for the same media: a publication's first keyframe arriving at
// wall time W starts segment floor((W-numberEpoch)/TargetDuration), at
// media time MSN*TargetDuration and program date-time numberEpoch plus
// that; media time then follows the publisher's timestamps. Segments
// start on the keyframe of their slot; parts are a fixed grid of the
// segment (part{MSN*parts+index}.m4s, listed with the grid's duration).
// writeLeadAligned replaces writeLead's cuts; closePart pads the slots no
// frame filled with GAP=YES parts (padParts), closeSegment the slots after
// the last; fillGaps lists the slots a node had no keyframe for as
// EXT-X-GAP segments, for the source, its variants and the TS playlist
// alike. Media and wall time map one to one (mediaToWall), so cues placed
// at an explicit time land alike on every node. The counters of what a
// node lacked are StreamStats.Aligned.
//
// # Events
//
// Timed metadata (product cues) enters through Manager.AddEvent and
// Manager.EndEvent (event.go), called by the cues package; an Event brings
// the framing of its emsg box and of its DATERANGE tag. It is placed on the
// stream's media timeline under s.mu, at once or (for "now") on the next
// lead frame (Stream.resolveNow in writeUnit). From there closePart puts
// its emsg box in the part whose time range holds it (Stream.partBoxes),
// the TS rendition sends the same ID3 bytes as a PES (ts_rendition.go,
// tsRendition.eventItems), and the playlists list it as EXT-X-DATERANGE
// (Stream.dateRanges) while it overlaps the window. Config.OnStreamStart
// lets the cues put stored events back on a stream that starts afresh; it
// runs in its own goroutine because Publish holds Manager.mu.
//
// # Hooks
//
// Config.Hooks (hooks.go) hand what a stream published to a consumer
// downstream, the recorder, as data: each complete segment (SegmentInfo:
// the very bytes viewers get, its init section, MSN, discontinuity,
// program date-time), each placement, end or cancellation of an event
// (EventInfo: the Event and its resolved start and end, from which
// Event.DateRangeTag gives the live DATERANGE line), and the end of a
// stream's session (StreamEnd). A publisher back within GracePeriod keeps
// the session; one after the end starts a new one. A variant's segments
// come through OnSegment too, SegmentInfo.Variant naming it, each after
// the source's segment of the same MSN. The hooks run under
// s.mu, in the stream's order, so they must only queue what they get: the
// recorder writes to disk on its own goroutine and drops what its bounded
// queue cannot take, and the live path never waits on it.
//
// Publisher data messages (AMF onCuePoint, onTextData) come in through
// publication.WriteData and are kept, the latest few, for
// Stream.DataMessages.
package packager

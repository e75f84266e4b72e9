package steering

// hasAlignedTimeline tells whether the server has the aligned_timeline
// key of the redundant ingest.
const hasAlignedTimeline = false

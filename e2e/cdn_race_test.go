//go:build race

package e2e

// raceEnabled: the race detector slows the test's own viewers several
// times, so the delays it prints are this process's CPU more than the edge's.
const raceEnabled = true

// Package fdlimit raises the process's open-file limit to what the system
// allows and says whether the server's own limits fit in it.
//
// Every viewer connection, blocked request and publisher holds a file
// descriptor; the soft limit that a shell or systemd hands a process (1,024
// is common) is far below the hard limit the process may raise itself to,
// and below what max_blocked_requests alone allows. A server that runs out
// of descriptors fails accept() for everyone, so the limit is raised at
// start and a misfit is said once, in the log, rather than found on the day.
package fdlimit

// Limit is the open-file limit: Soft applies, Hard is what Soft may be
// raised to.
type Limit struct {
	Soft, Hard uint64
}

// Reserve is the descriptors kept for everything that is not a connection
// counted by the server's own limits: listeners, the cue store, log files,
// the runtime's own.
const Reserve = 64

// Fits reports whether need descriptors (the sum of the server's
// connection limits) fit under l.Soft with Reserve to spare.
func (l Limit) Fits(need uint64) bool {
	return need+Reserve <= l.Soft
}

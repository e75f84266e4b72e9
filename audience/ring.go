package audience

// ring counts events per second over the last len(counts) seconds: the
// viewers whose last heartbeat fell in each second, the reactions of each
// second. Its memory is fixed, whatever the traffic: a slot is reused once
// its second has left the ring.
type ring struct {
	secs   []int64 // the Unix second each slot holds
	counts []int64
}

func newRing(seconds int) ring {
	return ring{secs: make([]int64, seconds), counts: make([]int64, seconds)}
}

func (r *ring) slot(sec int64) int {
	n := int64(len(r.secs))
	return int(((sec % n) + n) % n)
}

// add adds d to second sec's count.
func (r *ring) add(sec, d int64) {
	i := r.slot(sec)
	if r.secs[i] != sec {
		r.secs[i], r.counts[i] = sec, 0
	}
	r.counts[i] += d
}

// sub takes one from second sec's count, if the ring still holds it.
func (r *ring) sub(sec int64) {
	i := r.slot(sec)
	if r.secs[i] == sec && r.counts[i] > 0 {
		r.counts[i]--
	}
}

// sum is the count of the seconds in (now-window, now].
func (r *ring) sum(now int64, window int) int64 {
	window = min(window, len(r.secs))
	var n int64
	for s := now - int64(window) + 1; s <= now; s++ {
		if i := r.slot(s); r.secs[i] == s {
			n += r.counts[i]
		}
	}
	return n
}

package ladder

import (
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// process is one ffmpeg with its pipes: stdin for the source, one pipe per
// output (file descriptors 3, 4, ... in ffmpeg, "pipe:3"), and the tail of
// its stderr for the log line that says why it ended.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser // nil unless asked for
	outs   []*os.File
	stderr *tail

	waitOnce sync.Once
	waitErr  error
}

// waitDelay is how long Wait waits for ffmpeg's pipes after it was
// killed, should something else hold them open.
const waitDelay = 2 * time.Second

// startProcess starts bin in a process group of its own, so that ending
// ctx kills it and anything it started (no zombies: wait must be called).
func startProcess(ctx context.Context, bin string, args []string, outputs int, stdout bool) (*process, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	ownGroup(cmd)
	cmd.WaitDelay = waitDelay
	p := &process{cmd: cmd, stderr: &tail{max: 2048}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if stdout {
		if p.stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	}
	var writeEnds []*os.File
	closeWriteEnds := func() {
		for _, w := range writeEnds {
			_ = w.Close()
		}
	}
	for range outputs {
		r, w, err := os.Pipe()
		if err != nil {
			closeWriteEnds()
			p.closeOuts()
			return nil, err
		}
		p.outs = append(p.outs, r)
		writeEnds = append(writeEnds, w)
	}
	cmd.ExtraFiles = writeEnds
	err = cmd.Start()
	// ffmpeg has its copies; ours would keep the readers from seeing EOF.
	closeWriteEnds()
	if err != nil {
		p.closeOuts()
		return nil, err
	}
	return p, nil
}

func (p *process) closeOuts() {
	for _, r := range p.outs {
		_ = r.Close()
	}
}

// pid is the process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// wait closes stdin and waits for the process to end; the caller ends the
// context first when it wants it killed. It may be called more than once.
func (p *process) wait() error {
	p.waitOnce.Do(func() {
		_ = p.stdin.Close()
		p.waitErr = p.cmd.Wait()
		p.closeOuts()
	})
	return p.waitErr
}

// cpu is the user and system CPU time of the ended process.
func (p *process) cpu() time.Duration {
	if p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// tail keeps the last max bytes written to it: ffmpeg's last words.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

//go:build !unix

package ladder

import "os/exec"

// ownGroup leaves the process as it is: without process groups, the end of
// its context kills the process itself (exec.CommandContext's default).
func ownGroup(*exec.Cmd) {}

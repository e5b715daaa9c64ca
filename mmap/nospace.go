package mmap

import "golang.org/x/sys/unix"

// errNoSpace is what a full device returns.
var errNoSpace = unix.ENOSPC

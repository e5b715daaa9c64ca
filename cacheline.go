package spillway

import "golang.org/x/sys/cpu"

// pad separates hot fields written by different goroutines.
type pad = cpu.CacheLinePad

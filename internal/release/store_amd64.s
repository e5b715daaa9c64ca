//go:build amd64 && !race

#include "textflag.h"

// func Store(p *atomic.Uint64, v uint64)
//
// An aligned 8-byte MOV is atomic on amd64, and under total store order it
// becomes visible after every earlier store of this core: a release store.
TEXT ·Store(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ v+8(FP), BX
	MOVQ BX, (AX)
	RET

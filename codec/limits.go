package codec

// Limits bound what a batch may hold. A Decoder refuses (ErrTooLarge) any
// batch beyond them before it allocates for it or decompresses it; an
// Encoder refuses to write one, so that whatever it writes its Decoder can
// read back. The zero value of a field means its default.
type Limits struct {
	// MaxBatchBytes bounds a whole stored batch, header included.
	// Default 16 MiB.
	MaxBatchBytes int
	// MaxRawBytes bounds the encoded records after decompression; the zstd
	// decoder's memory and window limits are set from it. Default 64 MiB.
	MaxRawBytes int
	// MaxRecords bounds the records of one batch. Default 1<<20.
	MaxRecords int
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxBatchBytes: 16 << 20, MaxRawBytes: 64 << 20, MaxRecords: 1 << 20}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = d.MaxBatchBytes
	}
	if l.MaxRawBytes <= 0 {
		l.MaxRawBytes = d.MaxRawBytes
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = d.MaxRecords
	}
	// The header stores lengths and counts in 32 bits.
	l.MaxBatchBytes = min(l.MaxBatchBytes, HeaderSize+(1<<32-1))
	l.MaxRawBytes = min(l.MaxRawBytes, 1<<32-1)
	l.MaxRecords = min(l.MaxRecords, 1<<32-1)
	return l
}

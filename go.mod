module github.com/spillway-io/spillway

go 1.26.0

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/dgryski/go-tinylfu v0.0.0-20210109191853-fba88f4a7f91
	github.com/klauspost/compress v1.20.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.49.0
)

require github.com/dgryski/go-metro v0.0.0-20250106013310-edb8663e5e33 // indirect

module github.com/spillway-io/spillway/bench

go 1.26.0

replace github.com/spillway-io/spillway => ../

require (
	github.com/Workiva/go-datastructures v1.1.7
	github.com/grandecola/bigqueue v0.5.0
	github.com/nsqio/go-diskqueue v1.1.0
	github.com/spillway-io/spillway v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-metro v0.0.0-20250106013310-edb8663e5e33 // indirect
	github.com/dgryski/go-tinylfu v0.0.0-20210109191853-fba88f4a7f91 // indirect
	github.com/grandecola/mmap v0.6.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

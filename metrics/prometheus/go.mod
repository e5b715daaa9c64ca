module github.com/spillway-io/spillway/metrics/prometheus

go 1.26.0

// In this repository the collector builds against the library beside it;
// a release replaces this line with the library's tagged version.
replace github.com/spillway-io/spillway => ../..

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-metro v0.0.0-20250106013310-edb8663e5e33 // indirect
	github.com/dgryski/go-tinylfu v0.0.0-20210109191853-fba88f4a7f91 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/spillway-io/spillway v0.0.0 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

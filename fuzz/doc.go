// Package fuzz holds Spillway's cross-package fuzz targets: properties that
// span packages (a segment log recovered from bytes that went through the
// codec and then rotted on disk). Each package's own targets sit next to
// its code; the seed corpora of these are in testdata/fuzz.
package fuzz

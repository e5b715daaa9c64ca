// Package xsync holds synchronization primitives the standard library does
// not offer in the shape Spillway's hot paths need.
package xsync

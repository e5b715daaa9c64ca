// Package shard maps messages to shards. A message with a key goes to the
// shard that xxhash64 of the key selects, so equal keys always share a
// shard, and with it their FIFO order. A message without a key goes to a
// shard picked at random from a per-thread generator, so keyless traffic
// spreads evenly without any shared counter to contend on.
package shard

import (
	"math/bits"
	"math/rand/v2"

	"github.com/cespare/xxhash/v2"
)

// Of returns the shard of key among n shards (n > 0). Keys that are equal
// map to the same shard; a nil or empty key maps to a random shard.
func Of(key []byte, n int) int {
	if len(key) == 0 {
		return Random(n)
	}
	return Hash(xxhash.Sum64(key), n)
}

// Hash maps a 64-bit hash onto n shards with Lemire's multiply-shift, which
// uses the hash's high bits and needs no division.
func Hash(h uint64, n int) int {
	hi, _ := bits.Mul64(h, uint64(n))
	return int(hi)
}

// Random returns a shard in [0, n) from the runtime's per-thread generator.
func Random(n int) int {
	return Hash(rand.Uint64(), n)
}

package shard_test

import (
	"fmt"

	"github.com/spillway-io/spillway/shard"
)

// Equal keys always map to the same shard, so they keep their order.
func ExampleOf() {
	a := shard.Of([]byte("user-42"), 8)
	b := shard.Of([]byte("user-42"), 8)
	fmt.Println(a == b, a >= 0 && a < 8)
	// Output:
	// true true
}

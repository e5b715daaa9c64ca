package ring_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/spillway-io/spillway/ring"
)

func ExampleSPSC() {
	r := ring.NewSPSC[string](8)
	go func() {
		for _, word := range []string{"one", "two", "three"} {
			if err := r.Push(context.Background(), word); err != nil {
				log.Fatal(err)
			}
		}
		r.Close() // the consumer drains what is left, then sees ErrClosed
	}()
	for {
		word, err := r.Pop(context.Background())
		if errors.Is(err, ring.ErrClosed) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(word)
	}
	// Output:
	// one
	// two
	// three
}

func ExampleMPSC_PushBatch() {
	r := ring.NewMPSC[int](4)
	n := r.PushBatch([]int{1, 2, 3, 4, 5, 6}) // only 4 fit
	dst := make([]int, 8)
	m := r.PopBatch(dst)
	fmt.Println(n, dst[:m])
	// Output: 4 [1 2 3 4]
}

func ExampleBroadcast() {
	b := ring.NewBroadcast[int](4)
	fast, slow := b.AddReader(), b.AddReader()
	for i := 1; b.TryPush(i); i++ {
	}
	fmt.Println("full after", b.Len(), "items")
	fast.PopBatch(make([]int, 4))
	fmt.Println("room once the fast reader has read:", b.TryPush(5)) // the slow reader gates the writer
	slow.Close()                                                     // a detached reader stops gating
	fmt.Println("room once the slow reader detached:", b.TryPush(5))
	v, _ := fast.TryPop()
	fmt.Println("fast reader got", v)
	// Output:
	// full after 4 items
	// room once the fast reader has read: false
	// room once the slow reader detached: true
	// fast reader got 5
}

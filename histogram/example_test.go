package histogram_test

import (
	"fmt"
	"time"

	"github.com/spillway-io/spillway/histogram"
)

func Example() {
	var h histogram.Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	var s histogram.Snapshot
	h.Snapshot(&s)
	fmt.Println(s.Count(), s.Quantile(0.5).Round(time.Microsecond), s.Quantile(0.99).Round(time.Microsecond), s.Max())
	// Output: 1000 502µs 987µs 1ms
}

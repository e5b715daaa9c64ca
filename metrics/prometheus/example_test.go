package prometheus_test

import (
	"context"
	"fmt"
	"net/http"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-io/spillway"
	spillwayprom "github.com/spillway-io/spillway/metrics/prometheus"
)

// A queue's metrics on a registry, served where Prometheus scrapes.
func ExampleNewCollector() {
	q, err := spillway.OpenQueue(spillway.Options{})
	if err != nil {
		panic(err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			panic(err)
		}
	}()

	reg := prom.NewRegistry()
	reg.MustRegister(spillwayprom.NewCollector(spillwayprom.Queue("orders", q)))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	if err := q.Send(context.Background(), spillway.Message{Value: []byte("hello")}); err != nil {
		panic(err)
	}
	sent, err := testutil.GatherAndCount(reg, "spillway_queue_messages_sent_total")
	if err != nil {
		panic(err)
	}
	fmt.Println("series:", sent, "depth:", q.Stats().Depth)
	// Output: series: 1 depth: 1
}

package natsjs

import (
	"context"
	"errors"
	"flag"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/testwait"
)

var clusterMessages = flag.Int("cluster.messages", 20000, "messages TestForwardClusterFailover forwards (make stress: 100000)")

// freePorts returns n loopback ports free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ports
}

// cluster is three JetStream servers in the process, routed to each other
// on loopback.
type cluster struct {
	t       *testing.T
	opts    []*server.Options
	servers []*server.Server
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	ports := freePorts(t, 6)
	var routes []string
	for i := range 3 {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(ports[3+i]))
	}
	c := &cluster{t: t}
	for i := range 3 {
		o := &server.Options{
			ServerName: "n" + strconv.Itoa(i), Host: "127.0.0.1", Port: ports[i], NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "C", Host: "127.0.0.1", Port: ports[3+i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.opts = append(c.opts, o)
		c.servers = append(c.servers, nil)
		c.start(i)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	return c
}

// start (re)starts server i with its options (and store).
func (c *cluster) start(i int) {
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("server %d did not start", i)
	}
	c.servers[i] = s
}

// stop shuts server name down.
func (c *cluster) stop(name string) int {
	for i, s := range c.servers {
		if s != nil && s.Name() == name {
			s.Shutdown()
			s.WaitForShutdown()
			c.servers[i] = nil
			return i
		}
	}
	c.t.Fatalf("no server %q", name)
	return -1
}

func (c *cluster) urls() string {
	var us []string
	for _, o := range c.opts {
		us = append(us, "nats://127.0.0.1:"+strconv.Itoa(o.Port))
	}
	return strings.Join(us, ",")
}

// TestForwardClusterFailover forwards keyed messages from a Persistent
// queue into an R3 stream of a three-node cluster, shutting the stream's
// leader down in the middle of the run and starting it again: every
// message is in the stream once (by its id), and each key's messages are
// in order.
func TestForwardClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster")
	}
	cl := startCluster(t)
	js := connect(t, cl.urls())
	ctx := context.Background()
	var st jetstream.Stream
	var err error
	testwait.Within(t, time.Minute, "the R3 stream", func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err = js.CreateStream(cctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Storage: jetstream.FileStorage, Replicas: 3, Duplicates: 2 * time.Minute})
		return err == nil
	})
	q := openQueue(t, spillway.Options{Dir: t.TempDir(), Durability: spillway.Persistent, Shards: 1, Ack: spillway.ManualAck, AckTimeout: time.Hour})
	n := *clusterMessages
	const keys = 16
	for i := range n {
		if err := q.Send(ctx, keyed(i%keys, i/keys)); err != nil {
			t.Fatal(err)
		}
	}
	var stats Stats
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Forward(fctx, q, js, "s", SourceName("q"), WithStats(&stats), StrictOrder())
	}()
	testwait.Within(t, time.Minute, "a third forwarded", func() bool { return stats.Forwarded.Load() >= uint64(n/3) })
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := cl.stop(info.Cluster.Leader)
	testwait.Within(t, time.Minute, "two thirds forwarded", func() bool { return stats.Forwarded.Load() >= uint64(2*n/3) })
	cl.start(leader)
	testwait.Within(t, time.Minute, "everything forwarded", func() bool { return stats.Forwarded.Load() >= uint64(n) })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward returned %v", err)
	}
	var msgs []*jetstream.RawStreamMsg
	testwait.Within(t, time.Minute, "the stream readable", func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		info, err = st.Info(cctx)
		return err == nil
	})
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	checkStream(t, msgs, n)
	t.Logf("%d messages, %d publishes retried", n, stats.Retried.Load())
}

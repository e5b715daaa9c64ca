package spillway

import (
	"context"
	"encoding/json"
	"testing"
)

func TestExpvarVar(t *testing.T) {
	q := openQueue(t, Options{Shards: 1, LatencySampling: 1})
	for range 3 {
		if err := q.Send(context.Background(), Message{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	var st Stats
	if err := json.Unmarshal([]byte(q.ExpvarVar().String()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Sent != 3 || st.Delivered != 1 || st.Depth != 2 || st.QueueWait.Count != 1 {
		t.Fatalf("expvar: %+v", st)
	}
	top, err := OpenTopic(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, top)
	sub, err := top.Subscribe("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Publish(context.Background(), Message{Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []interface{ String() string }{top.ExpvarVar(), sub.ExpvarVar()} {
		var ts Stats
		if err := json.Unmarshal([]byte(v.String()), &ts); err != nil {
			t.Fatal(err)
		}
		if ts.Depth != 1 {
			t.Fatalf("topic expvar: %+v", ts)
		}
	}
}

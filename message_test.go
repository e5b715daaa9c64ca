package spillway

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestDetached: a detached message has the same content in bytes of its
// own: writing over the buffer it came from leaves it as it was, and each
// part is capped at its length.
func TestDetached(t *testing.T) {
	buf := []byte("keyvaluehkhv")
	hk := buf[8:10]
	m := Message{Key: buf[0:3], Value: buf[3:8], Headers: []Header{{Key: string(hk), Value: buf[10:12]}}, Priority: 3}
	m.Headers[0].Key = unsafe.String(unsafe.SliceData(hk), len(hk)) // as a log's headers are
	d := detached(m)
	for i := range buf {
		buf[i] = 'x'
	}
	if string(d.Key) != "key" || string(d.Value) != "value" || len(d.Headers) != 1 || d.Headers[0].Key != "hk" || !bytes.Equal(d.Headers[0].Value, []byte("hv")) || d.Priority != 3 {
		t.Fatalf("detached: %q %q %+v %d", d.Key, d.Value, d.Headers, d.Priority)
	}
	if cap(d.Key) != len(d.Key) || cap(d.Value) != len(d.Value) || cap(d.Headers[0].Value) != 2 {
		t.Fatal("a part is not capped at its length")
	}
	if e := detached(Message{}); e.Key != nil || e.Value != nil || e.Headers != nil {
		t.Fatalf("empty: %+v", e)
	}
}

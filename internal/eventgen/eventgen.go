// Package eventgen generates realistic, varied event data for benchmarks and
// tests: JSON-like records of 64 B to 4 KiB, the mix of repeated structure,
// identifiers, numbers and free text that application events carry. Data
// from a repeated string would flatter every compressor; this does not.
//
// A Generator is deterministic for a seed and not safe for concurrent use.
package eventgen

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Generator produces events from a seeded source.
type Generator struct {
	rng  *rand.Rand
	ts   int64 // unix milliseconds, advancing with each event
	sent int64 // nanoseconds of send time since ts at creation
}

// New returns a generator for seed.
func New(seed uint64) *Generator {
	return &Generator{
		rng: rand.New(rand.NewPCG(seed, seed^0x6a09e667f3bcc908)),
		ts:  1_795_000_000_000,
	}
}

var (
	eventTypes = []string{"page_view", "click", "add_to_cart", "checkout", "purchase", "search", "login", "logout", "signup", "error", "api_call", "video_play"}
	countries  = []string{"DE", "US", "FR", "GB", "JP", "BR", "IN", "CA", "NL", "SE", "PL", "ES", "IT", "KR", "AU"}
	plans      = []string{"free", "pro", "team", "enterprise"}
	sections   = []string{"products", "blog", "docs", "account", "cart", "search", "help", "pricing", "about"}
	agents     = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"okhttp/4.12.0",
		"Go-http-client/2.0",
	}
	words = []string{
		"the", "order", "was", "shipped", "customer", "reported", "payment", "failed", "retry", "queue",
		"timeout", "connection", "reset", "by", "peer", "latency", "increased", "after", "deploy", "of",
		"version", "service", "returned", "status", "while", "processing", "request", "for", "user", "account",
		"inventory", "updated", "warehouse", "delayed", "refund", "issued", "invoice", "generated", "cart",
		"abandoned", "session", "expired", "token", "refreshed", "cache", "miss", "database", "slow", "query",
		"index", "rebuilt", "partition", "rebalanced", "consumer", "lag", "growing", "alert", "resolved",
		"with", "and", "in", "on", "to", "from", "a", "an", "is", "not", "new", "old", "first", "last",
	}
	propKeys = []string{"campaign", "variant", "experiment", "currency", "amount", "quantity", "sku", "category", "coupon", "source", "medium", "screen", "locale", "tz", "build", "region"}
)

// Timestamp returns the unix-nanosecond timestamp of the last event.
func (g *Generator) Timestamp() int64 { return g.ts * 1_000_000 }

// Key appends a partitioning key: a user id drawn from a skewed population.
func (g *Generator) Key(dst []byte) []byte {
	dst = append(dst, "user-"...)
	return strconv.AppendUint(dst, g.user(), 10)
}

func (g *Generator) user() uint64 {
	// Zipf-like: many events from few users.
	return uint64(math.Exp(g.rng.Float64()*math.Log(1e6))) + 1
}

// Event appends one event. Its size is log-uniform between 64 B and 4 KiB:
// most events are a few hundred bytes, a few carry long text.
func (g *Generator) Event(dst []byte) []byte {
	return g.eventFor(dst, int(math.Exp(math.Log(64)+g.rng.Float64()*(math.Log(4096)-math.Log(64)))))
}

func (g *Generator) eventFor(dst []byte, target int) []byte {
	start := len(dst)
	g.ts += int64(g.rng.IntN(50))
	dst = append(dst, `{"id":"`...)
	dst = g.hex(dst, 16)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, g.ts, 10)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, pick(g.rng, eventTypes)...)
	if target < 100 {
		return append(dst, `"}`...)
	}
	dst = append(dst, `","user":{"id":`...)
	dst = strconv.AppendUint(dst, g.user(), 10)
	dst = append(dst, `,"country":"`...)
	dst = append(dst, pick(g.rng, countries)...)
	dst = append(dst, `","plan":"`...)
	dst = append(dst, pick(g.rng, plans)...)
	dst = append(dst, `"}`...)
	if len(dst)-start < target-160 {
		dst = append(dst, `,"session":"`...)
		dst = g.hex(dst, 24)
		dst = append(dst, `","path":"/`...)
		dst = append(dst, pick(g.rng, sections)...)
		dst = append(dst, '/')
		dst = append(dst, pick(g.rng, words)...)
		dst = append(dst, '/')
		dst = strconv.AppendInt(dst, int64(g.rng.IntN(100000)), 10)
		dst = append(dst, `","ua":"`...)
		dst = append(dst, pick(g.rng, agents)...)
		dst = append(dst, '"')
	}
	if len(dst)-start < target-40 {
		dst = append(dst, `,"props":{`...)
		for i := 0; len(dst)-start < target-40 && i < 8; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, pick(g.rng, propKeys)...)
			dst = append(dst, `":`...)
			if g.rng.IntN(2) == 0 {
				dst = strconv.AppendFloat(dst, float64(g.rng.IntN(1000000))/100, 'f', 2, 64)
			} else {
				dst = append(dst, '"')
				dst = append(dst, pick(g.rng, words)...)
				dst = append(dst, '-')
				dst = strconv.AppendInt(dst, int64(g.rng.IntN(1000)), 10)
				dst = append(dst, '"')
			}
		}
		dst = append(dst, '}')
	}
	if len(dst)-start < target-20 {
		dst = append(dst, `,"message":"`...)
		for len(dst)-start < target-2 {
			dst = append(dst, pick(g.rng, words)...)
			switch g.rng.IntN(12) {
			case 0:
				dst = append(dst, ' ')
				dst = strconv.AppendInt(dst, int64(g.rng.IntN(1<<20)), 10)
			case 1:
				dst = append(dst, " id="...)
				dst = g.hex(dst, 8)
			}
			dst = append(dst, ' ')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

func (g *Generator) hex(dst []byte, n int) []byte {
	const digits = "0123456789abcdef"
	for range n {
		dst = append(dst, digits[g.rng.IntN(16)])
	}
	return dst
}

func pick(rng *rand.Rand, xs []string) string { return xs[rng.IntN(len(xs))] }

// EventOfSize appends one event of exactly n bytes: an event generated for
// that size, cut or padded with message words to fit.
func (g *Generator) EventOfSize(dst []byte, n int) []byte {
	start := len(dst)
	dst = g.eventFor(dst, n)
	for len(dst)-start < n {
		dst = append(dst, ' ')
		dst = append(dst, pick(g.rng, words)...)
	}
	return dst[:start+n]
}

// SendTime returns a timestamp for a message sent now by a busy producer:
// each call is 0.1 to 1 µs after the previous, in unix nanoseconds.
func (g *Generator) SendTime() int64 {
	g.sent += 100 + int64(g.rng.IntN(900))
	return g.ts*1_000_000 + g.sent
}

// Package natspipe carries a load generator's messages through core NATS:
// a server in this process on a loopback port, a publishing connection
// and a subscribing one.
package natspipe

package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"

	spillway "github.com/spillway-io/spillway"
)

// keyFile registers -key-file on fs.
func keyFile(fs *flag.FlagSet) *string {
	return fs.String("key-file", "", `read an encrypted directory with the keys in this JSON file: {"current": 2, "keys": {"1": "<64 hex digits>", "2": "..."}}`)
}

// loadKeys reads a key file (see keyFile); "" is none. Its errors never
// hold a key's bytes.
func loadKeys(path string) (*spillway.Encryption, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Current uint32            `json:"current"`
		Keys    map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: not a key file (JSON with current and keys)", path)
	}
	e := &spillway.Encryption{Keys: map[uint32][]byte{}, Current: f.Current}
	for id, h := range f.Keys {
		n, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: key id %q is not a number", path, id)
		}
		key, err := hex.DecodeString(h)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("%s: key id %s is not 64 hex digits (a 32-byte key)", path, id)
		}
		e.Keys[uint32(n)] = key
	}
	if _, ok := e.Keys[e.Current]; !ok && len(e.Keys) > 0 {
		for id := range e.Keys { // reading only: any id will do as current
			e.Current = id
			break
		}
	}
	return e, nil
}

package spillway_test

import (
	"log"
	"os"
)

// tempDir makes a directory for an example and returns it with the
// function that removes it.
func tempDir() (string, func()) {
	dir, err := os.MkdirTemp("", "spillway-example-")
	if err != nil {
		log.Fatal(err)
	}
	return dir, func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Fatal(err)
		}
	}
}

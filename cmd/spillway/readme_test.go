package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fenced returns the body of the first ``` block of the given language
// after marker in text.
func fenced(t *testing.T, text, marker, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, marker)
	if !ok {
		t.Fatalf("README has no %q", marker)
	}
	_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
	if !ok {
		t.Fatalf("README has no ```%s block after %q", lang, marker)
	}
	body, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatalf("the ```%s block after %q does not end", lang, marker)
	}
	return body
}

// TestReadmeQuickStart compiles and runs the README's quick start as it is
// written, against the library in this repository, twice (the README says
// the second run starts from an empty queue), and compares what it prints
// with what the README says it prints: the README cannot drift from the
// API.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	program := fenced(t, string(readme), "## Quick start", "go")
	want := fenced(t, string(readme), "It prints:", "text")

	dir := t.TempDir()
	gomod := "module quickstart\n\ngo 1.26.0\n\nrequire github.com/spillway-io/spillway v0.0.0\n\nreplace github.com/spillway-io/spillway => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"main.go": []byte(program), "go.mod": []byte(gomod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command(gotool, "build", "-o", "quickstart", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's quick start does not build: %v\n%s", err, out)
	}
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(filepath.Join(dir, "quickstart"))
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if string(out) != want {
			t.Fatalf("run %d printed\n%s\nthe README says\n%s", run, out, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "quickstart-queue", "MANIFEST")); err != nil {
		t.Fatalf("the quick start's queue directory: %v", err)
	}
}

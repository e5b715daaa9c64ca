// Command spillway benchmarks Spillway on this machine and reads what its
// directories hold.
//
//	spillway bench                 Spillway beside a buffered channel, in one run
//	spillway inspect DIR           what a Queue's or Topic's directory holds
//	spillway verify DIR            check every batch; exit 1 if anything is wrong
//	spillway dump DIR              the records, as JSON lines
//
// Every command takes -h. Exit status: 0 success; 1 verify found problems;
// 2 a usage error or a failure (the message says what to do).
//
// The commands are parsed with the standard flag package, one FlagSet per
// command: four commands of a few flags each need nothing more, and the
// binary keeps the library's few dependencies plus the progress bar and the
// plotting library.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK       = 0
	exitProblems = 1 // verify found something wrong
	exitFailure  = 2 // a usage error, or a command that could not do its job
)

// command is one of spillway's subcommands.
type command struct {
	name, args, summary, example string
	run                          func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"bench", "[flags]", "run workloads through Spillway and a buffered channel, side by side",
		"spillway bench -duration 2s -plot bench.png", runBench},
	{"inspect", "[flags] DIR", "show what a Queue's or Topic's directory holds, without opening it",
		"spillway inspect /var/lib/app/jobs", runInspect},
	{"verify", "[flags] DIR", "check every batch's checksum and the segments' structure (exit 1 if not clean)",
		"spillway verify /var/lib/app/jobs && echo clean", runVerify},
	{"dump", "[flags] DIR", "print the records a directory's logs hold, as JSON lines",
		"spillway dump -shard 0 -from 1000 -limit 10 /var/lib/app/jobs", runDump},
}

// errProblems is what verify returns when it found something wrong: exit 1.
var errProblems = errors.New("problems found")

// usageError is a mistake in the command line: exit 2 with the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitFailure
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("spillway "+c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			say(stderr, "usage: spillway %s %s\n\n%s.\n\nexample:\n  %s\n\nflags:\n", c.name, c.args, capitalize(c.summary), c.example)
			fs.PrintDefaults()
		}
		err := c.run(fs, args[1:], stdout, stderr)
		var ue usageError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errProblems):
			return exitProblems
		case errors.As(err, &ue):
			say(stderr, "spillway %s: %v (spillway %s -h shows the usage)\n", c.name, err, c.name)
			return exitFailure
		default:
			say(stderr, "spillway %s: %v\n", c.name, err)
			return exitFailure
		}
	}
	say(stderr, "spillway: no command %q (spillway -h lists them)\n", args[0])
	return exitFailure
}

func usage(w io.Writer) {
	say(w, "usage: spillway COMMAND [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		say(w, "  %-8s %s\n", c.name, c.summary)
	}
	say(w, "\nspillway COMMAND -h describes one. Exit status: 0 success, 1 verify found problems, 2 a usage error or a failure.\n")
}

// parse parses a command's flags and checks that it got want positional
// arguments.
func parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if fs.NArg() != want {
		return nil, usageError{fmt.Sprintf("want %d argument(s), got %d", want, fs.NArg())}
	}
	return fs.Args(), nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// say writes a message for the person at the terminal (usage, errors): if
// that fails there is nobody left to tell.
func say(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

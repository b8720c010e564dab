// Command standin is scaleagent's test stand-in for a Rancher server.
//
// It is built from source by the trial suite and never shipped. Each file of
// this package registers one subcommand in init(); `standin <command> -h`
// lists its flags.
package main

import (
	"fmt"
	"os"
	"sort"
)

// commands maps a subcommand name to its entry point. Files add to it from
// init() so that they never need to edit this one.
var commands = map[string]func(args []string) error{}

func register(name string, run func(args []string) error) {
	if _, dup := commands[name]; dup {
		panic("duplicate standin command " + name)
	}
	commands[name] = run
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: standin <command> [flags]\ncommands: %v\n", names)
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "standin %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

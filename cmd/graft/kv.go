package main

import "github.com/urfave/cli/v2"

func kvCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "kv",
		Usage: "read, write and watch the cluster's keys through the local agent",
		Description: "kv talks to the agent running on this host: the one --api or --data-dir names, else one\n" +
			"running on a .graft dir (make run's) here or in a parent directory, else the default data\n" +
			"dir's. Reads are served by the agent's copy of the state unless --linearizable; a write\n" +
			"returns once the agent's copy has it. Keys under _graft/ are graft's own: they can be\n" +
			"read and watched but not written.",
		Subcommands: []*cli.Command{
			kvGetCommand(e),
			kvPutCommand(e),
			kvDelCommand(e),
			kvListCommand(e),
			kvWatchCommand(e),
		},
	}
}

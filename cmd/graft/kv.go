package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

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

// exitCompareFailed is the exit code of a `kv put --cas` or `kv del --cas`
// whose compare failed: the key was not at the revision given, and nothing
// was written. Scripts tell it from other failures to retry.
const exitCompareFailed = 3

func casFlag() cli.Flag {
	return &cli.Uint64Flag{Name: "cas", DefaultText: "none: write whatever the revision",
		Usage: "write only if the key is at revision `REV` (its mod_rev; 0: only if it does not exist)"}
}

// casNote is the description of --cas for command cmd, whose writes are
// done (written, deleted).
func casNote(cmd, done string) string {
	return fmt.Sprintf("With --cas REV, %s applies only if the key's mod_rev is REV (0: if the key does not\n"+
		"exist), comparing and writing in one step. If the key is at another revision, nothing is\n"+
		"%s, the message names the key's revision, and the exit status is %d.", cmd, done, exitCompareFailed)
}

// casOutcome is the result of a conditional write of key at revision cas
// that answered a, err.
func casOutcome(key string, cas uint64, a api.CASAnswer, err error, done string) error {
	if err != nil || a.Applied {
		return err
	}
	return &exitError{code: exitCompareFailed, err: fmt.Errorf("%s: nothing %s", api.CompareFailure(key, cas, a.KV), done)}
}

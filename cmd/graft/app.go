package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/cluster"
)

// env is what the commands get from main: where to read and write, the
// channel closed by a second interrupt, and, for tests, an adjustment of
// the cluster server's configuration and a call with each cluster server
// the agent starts, right after it starts (both nil in production).
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	hard           <-chan struct{}
	tune           func(*cluster.ServerConfig)
	serverStarted  func(*cluster.Server)
	unknownCommand string // set when the command line named no command we know
	// goMetrics: the process runs one agent, whose --metrics may take
	// go-metrics' process-wide global (main's; not the tests' in-process
	// agents).
	goMetrics bool
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:  "graft",
		Usage: "keep a graph of resources converged on this host",
		Description: "graft keeps files, commands and other resources on a host as a graph declares them,\n" +
			"repairing drift as soon as it happens.\n\n" +
			"Exit codes: 0 success; 1 error; 2 from `run --noop --converged-exit`: something would\n" +
			"change; 64 a usage error (a mistyped flag, command or argument); 130 stopped by a\n" +
			"second signal.",
		Version:              version(),
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		HideVersion:          true,
		Suggest:              true,
		EnableBashCompletion: true,
		// main reports errors and exits; urfave/cli must not.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			runCommand(e),
			checkCommand(e),
			deployCommand(e),
			kvCommand(e),
			statusCommand(e),
			graphCommand(e),
			lockCommand(e),
			joinCommand(e),
			membersCommand(e),
			leaveCommand(e),
			keygenCommand(e),
			completionCommand(e),
			manCommand(e),
			versionCommand(e),
		},
		// A mistyped command is a usage error (exitUsage), not a success.
		CommandNotFound: func(c *cli.Context, name string) { e.unknownCommand = name },
	}
	// Usage errors exit exitUsage with the message on stderr; help on stdout would
	// end up in the output of `graft kv get ... > file`.
	usage := func(c *cli.Context, err error, _ bool) error {
		name := "graft"
		if c.Command != nil && c.Command.HelpName != "" {
			name = c.Command.HelpName
		}
		if name == "graft" {
			return usageError("%v (see graft --help)", err)
		}
		return usageError("%s: %v (see %s --help)", strings.TrimPrefix(name, "graft "), err, name)
	}
	app.OnUsageError = usage
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = usage
			// A command without subcommands takes "help" as an argument
			// (a key, a file), not as a help subcommand urfave/cli adds.
			c.HideHelpCommand = len(c.Subcommands) == 0
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return app
}

// Flags shared by commands that log.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"GRAFT_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Value: string(logAuto),
			Usage: "text, json, or auto: text when stderr is a terminal, JSON otherwise (a service's journal, a file, a pipe)", EnvVars: []string{"GRAFT_LOG_FORMAT"}},
	}
}

// logFormat is the format of the log: --log-format.
type logFormat string

const (
	logText logFormat = "text"
	logJSON logFormat = "json"
	logAuto logFormat = "auto" // text for a person at a terminal, JSON for machines
)

// parseLogFormat returns the log format --log-format asks for, auto
// resolved for a log written to stderr.
func parseLogFormat(c *cli.Context, stderr io.Writer) (logFormat, error) {
	switch f := logFormat(strings.ToLower(c.String("log-format"))); f {
	case logText, logJSON:
		return f, nil
	case logAuto, "":
		if isTerminal(stderr) {
			return logText, nil
		}
		return logJSON, nil
	}
	return "", usageError("--log-format: %q is not one of text, json, auto", c.String("log-format"))
}

// newLogger builds the logger the log flags ask for, writing format to w.
func newLogger(c *cli.Context, w io.Writer, format logFormat) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, usageError("--log-level: %q is not one of debug, info, warn, error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == logJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// oneArg returns the single positional argument a command takes.
func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usageError("%s: want exactly one %s, got %d arguments", c.Command.FullName(), what, c.NArg())
	}
	return c.Args().First(), nil
}

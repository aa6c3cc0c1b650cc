package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/layercheck/layercheck/report/metrics"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func toolVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Env is what every command's Run receives besides the parsed flags.
type Env struct {
	Ctx            context.Context
	Stdout, Stderr io.Writer
	// result is what a reporting command concluded (conclude sets it);
	// exitCode turns it into the exit code.
	result *result
	// start is when the command started (metrics' duration).
	start time.Time
	// audit, when set, is the per-store round -o prometheus writes (host);
	// exporter, the one a --metrics-listen server also serves.
	audit    *metrics.Audit
	exporter *metrics.Exporter
}

type kongExit struct{ code int }

// run parses args and runs one command. Tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var cli CLI
	defer func() {
		if r := recover(); r != nil {
			if ke, ok := r.(kongExit); ok {
				code = ke.code
				return
			}
			panic(r)
		}
	}()
	parser, err := kong.New(&cli,
		kong.Name("layercheck"),
		kong.Description("Prove whether container images are intact: registry images, docker save tarballs, OCI layouts and host stores.\n\n"+exitCodeHelp),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(kongExit{c}) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"version": toolVersion()},
	)
	if err != nil {
		fmt.Fprintln(stderr, "layercheck:", err)
		return ExitUsage
	}
	answerCompletion(parser) // the shell's completion hook (completion.go)
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "layercheck:", err)
		return ExitUsage
	}
	env := &Env{Ctx: ctx, Stdout: stdout, Stderr: stderr, start: time.Now()}
	err = kctx.Run(&cli.Globals, env)
	if err != nil {
		fmt.Fprintln(stderr, "layercheck:", err)
	}
	return exitCode(env.result, err)
}

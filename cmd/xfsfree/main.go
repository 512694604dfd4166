// Command xfsfree frees XFS inodes offline: orphans left on the AGI
// unlinked lists and inode chunks that are entirely free, through the
// filesystem's own log. This package is the CLI only: flags, output and
// progress. The filesystem logic lives in the packages it calls.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // refused or failed; nothing written unless said
	exitUsage  = 2
	// exitInterrupted: stopped by SIGINT or SIGTERM (128+2, as shells
	// report an interrupted command).
	exitInterrupted = 130
	// exitCrashed: stopped by an injected crash (test builds only).
	exitCrashed = 99
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

type globalFlags struct {
	json     bool
	buffered bool
	quiet    bool
	part     partitionFlags // --partition, --offset, --size (partition.go)

	start  time.Time // when the run started (elapsed_seconds, text summaries)
	report any       // the report of the --json document (output.go)
}

func newRootCmd(g *globalFlags) *cobra.Command {
	root := &cobra.Command{
		Use:   "xfsfree",
		Short: "Free XFS inodes offline, through the filesystem's own log",
		Long: `xfsfree works on an XFS filesystem that is not mounted (an image file, a
loop device, a snapshot, a block device). It reads every metadata block with
O_DIRECT and verifies its magic and CRC, and writes every change through the
filesystem's own log, in the kernel's format, so that a crash at any point is
recovered by 'xfsfree recover' or by a kernel mount.

  clean    what a kernel mount and unmount do: replay the log (its intents
           finished), free the orphans and the CoW leftovers, leave it clean
  info     geometry, features, log state and per-AG inode counts (read-only)
  scan     orphans on the AGI unlinked lists and fully free inode chunks:
           what 'free' would release (read-only)
  check    verify CRCs, btrees and AG counters against each other (read-only)
  recover  replay a dirty log (a snapshot's, a crash's) and leave it clean
  free     free orphans (--orphans), chunks already entirely free
           (--empty-chunks) or given orphans (--ino N...)
  extract  save an inode's bytes (--ino N), or every orphan's
           (--all-orphans DIR), without writing to the device

Only v5 (CRC-enabled) filesystems are supported. A device or image that is
mounted is refused; 'free' refuses a dirty log (run 'recover' first).

DEV may be a whole disk or disk image with a GPT or MBR partition table (a
VM or cloud image): the partition holding XFS is used when there is one;
with several, --partition N picks one. --offset and --size give the
filesystem's byte range by hand. No byte outside it is read or written.

With --json every run prints one JSON document on stdout, a failure's
included (its "error" says what failed and where); docs/xfsfree.schema.json
in the source describes it.

Exit codes: 0 done, 1 refused or failed, 2 usage error, 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print the result as JSON on stdout")
	root.PersistentFlags().BoolVar(&g.buffered, "buffered", false, "use buffered I/O instead of O_DIRECT (for filesystems that refuse O_DIRECT, e.g. tmpfs)")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// Without a command there is nothing to do: a usage error (exit 2).
	// Extra words are still reported by cobra as an unknown command.
	root.RunE = func(_ *cobra.Command, args []string) error {
		return usageError{errors.New("no command given (info, scan, check, recover, free, clean, extract)")}
	}
	root.AddCommand(newInfoCmd(g), newScanCmd(g), newCheckCmd(g), newRecoverCmd(g), newFreeCmd(g), newCleanCmd(g), newExtractCmd(g))
	addTestHooks(root, g)
	root.AddCommand(newGenDocsCmd())
	addVersionFlag(root)
	addPartitionFlags(root, g, &g.part)
	addExamples(root)
	return root
}

// exactlyOneDevice is the Args validator of commands that take DEV.
func exactlyOneDevice(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError{fmt.Errorf("expected exactly one device or image argument, got %d", len(args))}
	}
	return nil
}

func main() {
	// A soft memory limit: the buffer cache is bounded (128 MiB) and the
	// plans are streamed, so the garbage collector keeps the heap near
	// what is live instead of letting it double. GOMEMLIMIT overrides it.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(run(os.Args[1:]))
}

// memoryLimit is the soft limit of the Go heap.
const memoryLimit = 192 << 20

func run(args []string) int {
	defer startProfile()()
	g := globalFlags{start: time.Now()}
	root := newRootCmd(&g)
	root.SetArgs(args)
	root.PersistentPreRunE = chainPreRun(root.PersistentPreRunE, func(cmd *cobra.Command) {
		if g.json {
			exitDocument = func(err error) { writeDocument(os.Stdout, commandName(cmd), nil, err, g.elapsed()) }
		}
	})
	cmd, err := root.ExecuteC()
	code := exitCode(err)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xfsfree:", err)
		if code == exitUsage {
			fmt.Fprintln(os.Stderr, "Run 'xfsfree --help' for usage.")
		}
	}
	if (g.json || wantsJSON(args)) && (g.report != nil || err != nil) {
		if jerr := writeDocument(os.Stdout, commandName(cmd), g.report, err, g.elapsed()); jerr != nil {
			fmt.Fprintln(os.Stderr, "xfsfree:", jerr)
			if code == exitOK {
				code = exitFailed
			}
		}
	}
	return code
}

// chainPreRun runs first, then pre (cobra runs only the nearest
// PersistentPreRunE).
func chainPreRun(pre func(*cobra.Command, []string) error, first func(*cobra.Command)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		first(cmd)
		if pre != nil {
			return pre(cmd, args)
		}
		return nil
	}
}

// exitCode is the exit status of a run that returned err.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ie interruptedError
	if errors.As(err, &ie) {
		return exitInterrupted
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return exitUsage
	}
	return exitFailed
}

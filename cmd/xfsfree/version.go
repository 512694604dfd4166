package main

// --version / -V: what was built, from the build information the Go
// toolchain embeds in the binary (runtime/debug.ReadBuildInfo).

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion describes the binary: the module version (a tag, a
// pseudo-version, or "(devel)" for a build from a checkout), the VCS
// revision and its time, whether the tree had uncommitted changes, and the
// Go toolchain. A build without VCS information (go build -buildvcs=false,
// or from a tree that is not a git checkout) says so.
type buildVersion struct {
	Module   string
	Revision string // "" when unknown
	Time     string // commit time, RFC 3339; "" when unknown
	Modified bool
	Go       string
	Platform string
}

func readBuildVersion() buildVersion {
	v := buildVersion{Module: "(unknown)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Module = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line --version prints (without the program name).
func (v buildVersion) String() string {
	var b strings.Builder
	b.WriteString(v.Module)
	if v.Revision == "" {
		b.WriteString(" (no VCS revision recorded)")
	} else {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		fmt.Fprintf(&b, " (revision %s", rev)
		if v.Time != "" {
			fmt.Fprintf(&b, ", %s", v.Time)
		}
		if v.Modified {
			b.WriteString(", dirty: uncommitted changes")
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ", %s %s", v.Go, v.Platform)
	return b.String()
}

// addVersionFlag gives root --version and -V (cobra's default would take
// -v, which the commands use for --verbose).
func addVersionFlag(root *cobra.Command) {
	root.Version = readBuildVersion().String()
	root.Flags().BoolP("version", "V", false, "print the version (module version, VCS revision, Go version) and exit")
	root.SetVersionTemplate("xfsfree {{.Version}}\n")
}

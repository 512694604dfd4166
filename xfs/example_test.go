package xfs_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/xfs"
)

// The runnable examples work on private copies of the committed fixture
// images (testdata/images: "default", a clean filesystem of 4 AGs, and
// "orphans", a frozen snapshot with 313 orphans and a dirty log), unpacked
// with zstd. An example cannot skip itself, so TestMain skips them all,
// with a one-line reason, where the fixtures cannot be had.

var exampleDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "xfsfree-examples-")
	if err == nil {
		exampleDir = dir
		err = testimg.Unpack("default", filepath.Join(dir, "probe.img"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "xfs: runnable examples skipped: %v\n", err)
		skip := "^Example(Open|FS_Scan|FS_Check|Recover)$"
		if s := flag.Lookup("test.skip").Value.String(); s != "" {
			skip = s + "|" + skip
		}
		flag.Set("test.skip", skip)
	}
	code := m.Run()
	if exampleDir != "" {
		os.RemoveAll(exampleDir)
	}
	os.Exit(code)
}

// image returns a fresh private copy of the named committed fixture.
func image(name string) string {
	f, err := os.CreateTemp(exampleDir, name+"-*.img")
	if err != nil {
		panic(err)
	}
	f.Close()
	if err := testimg.Unpack(name, f.Name()); err != nil {
		panic(err)
	}
	return f.Name()
}

// Reading: open read-only, then ask for the geometry and the log's state.
func ExampleOpen() {
	fs, err := xfs.Open(image("default"), xfs.Options{ReadOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fs.Close()
	info, err := fs.Info()
	if err != nil {
		fmt.Println(err)
		return
	}
	g := info.Geometry
	fmt.Printf("%d AGs of %d blocks of %d bytes; root inode %d\n", g.AGCount, g.AGBlocks, g.BlockSize, g.RootIno)
	fmt.Printf("log clean: %v\n", info.Log.Clean)
	// Output:
	// 4 AGs of 19200 blocks of 4096 bytes; root inode 128
	// log clean: true
}

// What a free would release: the orphans on the AGI unlinked lists and the
// inode chunks that are entirely free. Scan reads only, on a dirty log too.
func ExampleFS_Scan() {
	fs, err := xfs.Open(image("orphans"), xfs.Options{ReadOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fs.Close()
	r, err := fs.Scan(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("log clean: %v\n", r.LogClean)
	for _, a := range r.AGs {
		n := 0
		for _, c := range a.Chains {
			n += len(c.Inodes)
		}
		fmt.Printf("AG %d: %d orphans in %d buckets\n", a.AG, n, len(a.Chains))
	}
	fmt.Printf("%d orphans holding %d blocks\n", r.Orphans, r.OrphanBlks)
	// Output:
	// log clean: false
	// AG 0: 10 orphans in 10 buckets
	// AG 1: 101 orphans in 64 buckets
	// AG 2: 1 orphans in 1 buckets
	// AG 3: 201 orphans in 64 buckets
	// 313 orphans holding 2026 blocks
}

// Check cross-checks every AG's headers and btrees, reading only.
func ExampleFS_Check() {
	fs, err := xfs.Open(image("default"), xfs.Options{ReadOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fs.Close()
	r, err := fs.Check(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d AGs checked: consistent %v, %d problems\n", len(r.AGs), r.Clean, len(r.Problems))
	for _, p := range r.Problems {
		fmt.Println(p) // the message, with its AG; p.Daddr, p.Struct, p.Field say where
	}
	// Output:
	// 4 AGs checked: consistent true, 0 problems
}

// The whole job on a snapshot: replay its log (Recover), then free its
// orphans through the log (OpenWrite, Free). A dry run of each first
// writes nothing.
func ExampleRecover() {
	img := image("orphans")
	dry, err := xfs.Recover(img, xfs.RecoverOptions{DryRun: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("dry run: %d records, %d transactions to replay\n", dry.Records, dry.Transactions)
	rep, err := xfs.Recover(img, xfs.RecoverOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("recovered at %s; %d orphans left on the unlinked lists\n", xfs.MakeLSN(rep.HeadCycle, rep.Head), rep.Orphans)

	fs, err := xfs.OpenWrite(img, xfs.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fs.Close()
	fr, err := fs.Free(xfs.FreeOptions{Orphans: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("freed %d orphans holding %d blocks, refused %d\n", fr.InodesFreed, fr.ForkBlocks, len(fr.Refused))
	fmt.Printf("released %d chunks of %d inodes; icount %d -> %d, ifree %d -> %d\n",
		fr.ChunksFreed, fr.ChunkInodes, fr.Before.ICount, fr.After.ICount, fr.Before.IFree, fr.After.IFree)
	// Output:
	// dry run: 2 records, 2 transactions to replay
	// recovered at 1:906; 313 orphans left on the unlinked lists
	// freed 313 orphans holding 2026 blocks, refused 0
	// released 5 chunks of 320 inodes; icount 832 -> 512, ifree 159 -> 152
}

// A mode is given in octal, with its type's name.
func ExampleMode() {
	m := xfs.Mode(0o100644)
	fmt.Println(m, m.Type(), m.Perm())
	fmt.Println(xfs.Mode(0o40755).Type())
	// Output:
	// 0100644 regular -rw-r--r--
	// directory
}

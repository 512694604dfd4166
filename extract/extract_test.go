package extract_test

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/xfsfree/xfsfree/extract"
	"github.com/xfsfree/xfsfree/internal/testfs"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

var bmapLine = regexp.MustCompile(`(?m)^data offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d)`)

// wantSegments is what a plan should read, from xfs_db's bmap of the
// inode: written extents below the size, merged where they continue each
// other both in the file and on the disk.
func wantSegments(t *testing.T, img string, ino uint64, size int64, g *ondisk.Geometry) []extract.Segment {
	t.Helper()
	bs := int64(g.BlockSize)
	var out []extract.Segment
	for _, m := range bmapLine.FindAllStringSubmatch(testimg.DB(t, img, fmt.Sprintf("inode %d", ino), "bmap -d"), -1) {
		off, _ := strconv.ParseInt(m[1], 10, 64)
		fsb, _ := strconv.ParseUint(m[2], 10, 64)
		n, _ := strconv.ParseInt(m[3], 10, 64)
		if m[4] == "1" || off*bs >= size {
			continue
		}
		s := extract.Segment{Off: off * bs, Daddr: g.FsbToDaddr(fsb), Len: n * bs, Keep: min(n*bs, size-off*bs)}
		s.Len = (s.Keep + bs - 1) / bs * bs
		if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == s.Off && out[k-1].Daddr+out[k-1].Len/512 == s.Daddr {
			out[k-1].Len += s.Len
			out[k-1].Keep += s.Keep
			continue
		}
		out = append(out, s)
	}
	return out
}

// TestPlanAgainstXfsDB: for every orphan of the orphans fixtures (empty,
// one extent, a 2000-extent btree fork, xattr files), the plan reads
// exactly the written extents xfs_db lists, merged where contiguous.
func TestPlanAgainstXfsDB(t *testing.T) {
	testimg.Need(t, "xfs_db", "zstd")
	for _, name := range testimg.OrphanFixtures() {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			fs := testfs.OpenRO(t, img)
			scan, err := fs.Scan(nil)
			if err != nil {
				t.Fatal(err)
			}
			plans := 0
			for _, a := range scan.AGs {
				for _, c := range a.Chains {
					for _, o := range c.Inodes {
						d, _, err := fs.ReadInode(o.Ino)
						if err != nil {
							t.Fatal(err)
						}
						p, err := extract.NewPlan(fs.Source(), d)
						if !d.IsReg() {
							if !errors.Is(err, extract.ErrNoData) {
								t.Errorf("inode %d (mode %#o): %v, want ErrNoData", o.Ino, d.Mode, err)
							}
							continue
						}
						if err != nil {
							t.Fatalf("inode %d: %v", o.Ino, err)
						}
						if d.Nblocks == 0 {
							continue // no extents: nothing for xfs_db to list
						}
						plans++
						want := wantSegments(t, img, o.Ino, int64(d.Size), fs.G)
						if fmt.Sprint(p.Segments) != fmt.Sprint(want) {
							t.Errorf("inode %d: segments %v, want %v", o.Ino, p.Segments, want)
						}
					}
				}
			}
			if plans < 4 {
				t.Errorf("%d plans compared", plans)
			}
		})
	}
}

type failingSink struct {
	n, after int
	buf      bytes.Buffer
}

var errSink = errors.New("sink full")

func (s *failingSink) WriteData(b []byte, off int64) error {
	if s.n++; s.n > s.after {
		return errSink
	}
	s.buf.Write(b)
	return nil
}

func (s *failingSink) Finish(int64) error { return nil }

// TestCopyStopsOnSinkError: a sink that fails in the middle of a file of
// 2000 segments stops the copy with its error, whatever the buffers in
// flight; a stream copy of the same file gives its bytes, holes as zeros.
func TestCopyStopsOnSinkError(t *testing.T) {
	testimg.Need(t, "zstd")
	img := testimg.Path(t, "orphans")
	fs := testfs.OpenRO(t, img)
	scan, err := fs.Scan(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range scan.AGs {
		for _, c := range a.Chains {
			for _, o := range c.Inodes {
				d, _, err := fs.ReadInode(o.Ino)
				if err != nil || d.Format != ondisk.DinodeFmtBtree {
					continue
				}
				p, err := extract.NewPlan(fs.Source(), d)
				if err != nil {
					t.Fatal(err)
				}
				for _, readers := range []int{1, 2, 3} {
					for _, buffers := range []int{1, 2, 5} {
						s := &failingSink{after: 7}
						o := extract.Options{Readers: readers, Buffers: buffers, BufferBytes: 4096}
						if err := p.Copy(fs.Source(), s, o); !errors.Is(err, errSink) || s.n != 8 {
							t.Errorf("%d readers, %d buffers: %v after %d writes, want the sink's error at the 8th", readers, buffers, err, s.n)
						}
					}
				}
				var buf bytes.Buffer
				if err := p.Copy(fs.Source(), extract.ToStream(&buf), extract.Options{BufferBytes: 64 << 10, Readers: 3}); err != nil {
					t.Fatal(err)
				}
				want := make([]byte, d.Size)
				for i := 0; i < len(want); i += 2 * 4096 {
					copy(want[i:], bytes.Repeat([]byte{0x22}, 4096))
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("stream of inode %d: %d bytes, not the fixture's", o.Ino, buf.Len())
				}
				return
			}
		}
	}
	t.Fatal("no btree-format orphan")
}

package ondisk

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// The fixtures the inode tests read: every inode size, a small block size,
// large extent counters, and a snapshot with orphans (non-null
// next_unlinked, unlinked directories of size 0).
var diFixtures = []string{"default", "nrext64", "isize1024", "isize2048", "bs1024", "orphans"}

// diImage is a fixture image opened for raw reads.
type diImage struct {
	path string
	f    *os.File
	g    *Geometry
}

func diOpen(t testing.TB, name string) *diImage {
	t.Helper()
	testimg.Need(t, "xfs_db")
	path := testimg.Path(t, name)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	b := make([]byte, SBSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := DecodeSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGeometry(sb)
	if err != nil {
		t.Fatal(err)
	}
	return &diImage{path: path, f: f, g: g}
}

func (m *diImage) read(t testing.TB, daddr int64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := m.f.ReadAt(b, daddr<<BBShift); err != nil {
		t.Fatalf("read daddr %d: %v", daddr, err)
	}
	return b
}

// diSlot is one inode slot of an allocated cluster, free or not.
type diSlot struct {
	ino     uint64
	agno    uint32
	cluster Cluster
	off     int    // byte offset in the cluster buffer
	buf     []byte // the cluster buffer
}

func (s diSlot) bytes(isz int) []byte { return s.buf[s.off : s.off+isz] }

// slots lists every inode slot of every inode chunk the inobt (read by
// xfs_db) records, checking our address math against where the chunk is.
func (m *diImage) slots(t testing.TB) []diSlot {
	t.Helper()
	g := m.g
	isz := int(g.InodeSize)
	var out []diSlot
	for agno := uint32(0); agno < g.AGCount; agno++ {
		for _, r := range testimg.InobtRecords(t, m.path, agno, false) {
			startino := uint32(r["startino"])
			alloc := HolemaskToAllocMask(uint16(r["holemask"]))
			for _, cl := range g.ChunkClusters(agno, startino, alloc) {
				if !cl.Allocated {
					continue
				}
				buf := m.read(t, cl.Daddr, cl.Len<<BBShift)
				if err := VerifyInodeBuf(buf, VerifyCtx{G: g, AG: agno, Daddr: cl.Daddr}); err != nil {
					t.Errorf("VerifyInodeBuf AG %d daddr %d: %v", agno, cl.Daddr, err)
				}
				for i := uint32(0); i < g.InodesPerCluster; i++ {
					agino := cl.FirstAgino + i
					if alloc&(uint64(1)<<(agino-startino)) == 0 {
						continue
					}
					loc, ok := g.ImapAligned(agno, agino)
					if !ok {
						loc = g.ImapInChunk(agno, agino, startino)
					}
					if loc.Daddr != cl.Daddr || loc.Offset != int(i)*isz || loc.Len != cl.Len {
						t.Fatalf("agino %d: imap %+v, chunk cluster at daddr %d offset %d", agino, loc, cl.Daddr, int(i)*isz)
					}
					out = append(out, diSlot{ino: g.Ino(agno, agino), agno: agno, cluster: cl, off: loc.Offset, buf: buf})
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no inode chunks found")
	}
	return out
}

func diWantCorrupt(t *testing.T, what string, err error, st, field string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: want *CorruptError %s %s, got %v", what, st, field, err)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("%s: error does not wrap ErrCorrupt", what)
	}
	if ce.Struct != st || ce.Field != field {
		t.Fatalf("%s: got struct %q field %q (%v), want %q %q", what, ce.Struct, ce.Field, err, st, field)
	}
}

// xfs_db prints inode timestamps with ctime(3) in the local zone.
func diDate(ts Timestamp) string {
	return time.Unix(ts.Sec, 0).UTC().Format("Mon Jan _2 15:04:05 2006")
}

// diSplitInodes splits the output of many `inode N` `p` commands into one
// text per inode.
func diSplitInodes(out string) []string {
	var parts []string
	for _, p := range strings.Split(out, "core.magic = ")[1:] {
		parts = append(parts, "core.magic = "+p)
	}
	return parts
}

func diU(t *testing.T, v string) uint64 {
	t.Helper()
	n, err := testimg.ParseUint(v)
	if err != nil {
		t.Fatalf("parse %q: %v", v, err)
	}
	return n
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// diCompareCore compares every core field xfs_db prints with ours.
func diCompareCore(t *testing.T, d *Dinode, f map[string]string) {
	t.Helper()
	fl := func(bit uint16) uint64 { return b2u(d.Flags&bit != 0) }
	fl2 := func(bit uint64) uint64 { return b2u(d.Flags2&bit != 0) }
	nums := map[string]uint64{
		"core.magic": uint64(d.Magic), "core.mode": uint64(d.Mode), "core.version": uint64(d.Version),
		"core.format": uint64(d.Format), "core.onlink": uint64(d.Metatype), "core.uid": uint64(d.UID),
		"core.gid": uint64(d.GID), "core.nlinkv2": uint64(d.Nlink), "core.projid_lo": uint64(d.ProjidLo),
		"core.projid_hi": uint64(d.ProjidHi), "core.atime.nsec": uint64(d.Atime.Nsec),
		"core.mtime.nsec": uint64(d.Mtime.Nsec), "core.ctime.nsec": uint64(d.Ctime.Nsec),
		"core.size": d.Size, "core.nblocks": d.Nblocks, "core.extsize": uint64(d.Extsize),
		"core.nextents": d.Nextents(DataFork), "core.naextents": d.Nextents(AttrFork),
		"core.forkoff": uint64(d.Forkoff), "core.aformat": uint64(d.Aformat),
		"core.dmevmask": uint64(d.Dmevmask), "core.dmstate": uint64(d.Dmstate),
		"core.newrtbm": fl(DiflagNewRTBM), "core.prealloc": fl(DiflagPrealloc), "core.realtime": fl(DiflagRealtime),
		"core.immutable": fl(DiflagImmutable), "core.append": fl(DiflagAppend), "core.sync": fl(DiflagSync),
		"core.noatime": fl(DiflagNoatime), "core.nodump": fl(DiflagNodump), "core.rtinherit": fl(DiflagRTInherit),
		"core.projinherit": fl(DiflagProjInherit), "core.nosymlinks": fl(DiflagNoSymlinks),
		"core.extsz": fl(DiflagExtsize), "core.extszinherit": fl(DiflagExtszInherit),
		"core.nodefrag": fl(DiflagNodefrag), "core.filestream": fl(DiflagFilestream),
		"core.gen": uint64(d.Gen), "v3.crc": uint64(bits.ReverseBytes32(d.CRC)), // xfs_db shows the stored bytes big-endian
		"v3.change_count": d.ChangeCount, "v3.lsn": d.LSN,
		"v3.flags2": d.Flags2, "v3.cowextsize": uint64(d.Cowextsize), "v3.crtime.nsec": uint64(d.Crtime.Nsec),
		"v3.inumber": d.Ino, "v3.reflink": fl2(Diflag2Reflink), "v3.cowextsz": fl2(Diflag2Cowextsize),
		"v3.dax": fl2(Diflag2DAX), "v3.bigtime": fl2(Diflag2Bigtime), "v3.nrext64": fl2(Diflag2Nrext64),
	}
	for k, want := range nums {
		v, ok := f[k]
		if !ok {
			t.Errorf("inode %d: xfs_db printed no %s", d.Ino, k)
			continue
		}
		if got := diU(t, v); got != want {
			t.Errorf("inode %d: %s: xfs_db %q, ours %d (%#x)", d.Ino, k, v, want, want)
		}
	}
	if !strings.HasSuffix(f["v3.crc"], "(correct)") {
		t.Errorf("inode %d: xfs_db says crc %s", d.Ino, f["v3.crc"])
	}
	nu := strconv.FormatUint(uint64(d.NextUnlinked), 10)
	if d.NextUnlinked == NullAgino {
		nu = "null"
	}
	if f["next_unlinked"] != nu {
		t.Errorf("inode %d: next_unlinked: xfs_db %q, ours %s", d.Ino, f["next_unlinked"], nu)
	}
	for k, ts := range map[string]Timestamp{"core.atime.sec": d.Atime, "core.mtime.sec": d.Mtime,
		"core.ctime.sec": d.Ctime, "v3.crtime.sec": d.Crtime} {
		if f[k] != diDate(ts) {
			t.Errorf("inode %d: %s: xfs_db %q, ours %q (%d)", d.Ino, k, f[k], diDate(ts), ts.Sec)
		}
	}
	if got := fmtUUID(d.UUID); f["v3.uuid"] != got {
		t.Errorf("inode %d: v3.uuid: xfs_db %q, ours %q", d.Ino, f["v3.uuid"], got)
	}
}

// diCompareExtents compares a fork's extent list with xfs_db's u3.bmx/a.bmx.
func diCompareExtents(t *testing.T, d *Dinode, fork int, out string) {
	t.Helper()
	name := "u3.bmx"
	if fork == AttrFork {
		name = "a.bmx"
	}
	ours, err := d.Extents(fork)
	if err != nil {
		t.Fatalf("inode %d: Extents(%d): %v", d.Ino, fork, err)
	}
	recs, err := testimg.ParseRecords(out, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(ours) {
		t.Fatalf("inode %d %s: xfs_db %d extents, ours %d", d.Ino, name, len(recs), len(ours))
	}
	for i, r := range recs {
		want := BmbtIrec{StartOff: r["startoff"], StartBlock: r["startblock"], BlockCount: uint32(r["blockcount"]), Unwritten: r["extentflag"] != 0}
		if ours[i] != want {
			t.Errorf("inode %d %s[%d]: xfs_db %v, ours %v", d.Ino, name, i, want, ours[i])
		}
	}
}

// diPtrs reads an xfs_db array of pointers; xfs_db prints a one-element
// array as "name[1] = v", without the index.
func diPtrs(t *testing.T, out string, f map[string]string, name string) []uint64 {
	t.Helper()
	var ptrs []uint64
	if v, ok := f[name+"[1]"]; ok {
		return append(ptrs, diU(t, v))
	}
	entries, _ := testimg.ParseArray(out, name)
	for _, e := range entries {
		ptrs = append(ptrs, diU(t, e.Value))
	}
	return ptrs
}

// diCompareForks compares the parsed forks with what xfs_db prints.
func diCompareForks(t *testing.T, d *Dinode, out string) {
	t.Helper()
	f := testimg.ParseFields(out)
	switch d.Format {
	case DinodeFmtExtents:
		diCompareExtents(t, d, DataFork, out)
	case DinodeFmtBtree:
		r, err := d.BmdrRoot(DataFork)
		if err != nil {
			t.Fatalf("inode %d: BmdrRoot: %v", d.Ino, err)
		}
		if diU(t, f["u3.bmbt.level"]) != uint64(r.Level) || diU(t, f["u3.bmbt.numrecs"]) != uint64(r.Numrecs) {
			t.Errorf("inode %d: bmbt root level/numrecs: xfs_db %s/%s, ours %d/%d", d.Ino, f["u3.bmbt.level"], f["u3.bmbt.numrecs"], r.Level, r.Numrecs)
		}
		keys, err := testimg.ParseRecords(out, "u3.bmbt.keys")
		if err != nil {
			t.Fatal(err)
		}
		ptrs := diPtrs(t, out, f, "u3.bmbt.ptrs")
		if fmt.Sprint(ptrs) != fmt.Sprint(r.Ptrs) {
			t.Errorf("inode %d: root ptrs: xfs_db %v, ours %v", d.Ino, ptrs, r.Ptrs)
		}
		// xfs_db prints no key for a one-entry root.
		if len(r.Keys) > 1 && len(keys) != len(r.Keys) {
			t.Fatalf("inode %d: root keys: xfs_db %d, ours %d", d.Ino, len(keys), len(r.Keys))
		}
		for i := range keys {
			if keys[i]["startoff"] != r.Keys[i] {
				t.Errorf("inode %d: root key %d: xfs_db %d, ours %d", d.Ino, i, keys[i]["startoff"], r.Keys[i])
			}
		}
	case DinodeFmtLocal:
		b, err := d.LocalData(DataFork)
		if err != nil {
			t.Fatalf("inode %d: LocalData: %v", d.Ino, err)
		}
		switch {
		case d.IsSymlink():
			if want := strconv.Quote(string(b)); f["u3.symlink"] != want {
				t.Errorf("inode %d: symlink: xfs_db %s, ours %s", d.Ino, f["u3.symlink"], want)
			}
		case d.IsDir():
			h, err := d.dirSF()
			if err != nil {
				t.Fatalf("inode %d: DirSF: %v", d.Ino, err)
			}
			parent := f["u3.sfdir3.hdr.parent.i4"]
			if h.I8Count > 0 {
				parent = f["u3.sfdir3.hdr.parent.i8"]
			}
			if diU(t, f["u3.sfdir3.hdr.count"]) != uint64(h.Count) || diU(t, f["u3.sfdir3.hdr.i8count"]) != uint64(h.I8Count) || diU(t, parent) != h.Parent {
				t.Errorf("inode %d: sfdir header: xfs_db count %s i8count %s parent %s, ours %+v", d.Ino,
					f["u3.sfdir3.hdr.count"], f["u3.sfdir3.hdr.i8count"], parent, h)
			}
		default:
			t.Errorf("inode %d: local data fork of mode %o", d.Ino, d.Mode)
		}
	case DinodeFmtDev:
		if diU(t, f["u3.dev"]) != uint64(d.Rdev()) {
			t.Errorf("inode %d: dev: xfs_db %s, ours %#x", d.Ino, f["u3.dev"], d.Rdev())
		}
	}
	if !d.HasAttrFork() {
		return
	}
	switch d.Aformat {
	case DinodeFmtLocal:
		b, err := d.LocalData(AttrFork)
		if err != nil {
			t.Fatalf("inode %d: LocalData(attr): %v", d.Ino, err)
		}
		if diU(t, f["a.sfattr.hdr.totsize"]) != uint64(len(b)) || diU(t, f["a.sfattr.hdr.count"]) != uint64(b[2]) {
			t.Errorf("inode %d: sfattr totsize/count: xfs_db %s/%s, ours %d/%d", d.Ino, f["a.sfattr.hdr.totsize"], f["a.sfattr.hdr.count"], len(b), b[2])
		}
	case DinodeFmtExtents:
		diCompareExtents(t, d, AttrFork, out)
	case DinodeFmtBtree:
		r, err := d.BmdrRoot(AttrFork)
		if err != nil {
			t.Fatalf("inode %d: BmdrRoot(attr): %v", d.Ino, err)
		}
		ptrs := diPtrs(t, out, f, "a.bmbt.ptrs")
		if diU(t, f["a.bmbt.level"]) != uint64(r.Level) || fmt.Sprint(ptrs) != fmt.Sprint(r.Ptrs) {
			t.Errorf("inode %d: attr bmbt root: xfs_db level %s ptrs %v, ours %+v", d.Ino, f["a.bmbt.level"], ptrs, r)
		}
	}
}

// TestDinodeAgainstXfsDB reads every inode slot of every chunk of real
// images straight from the image file and checks: Encode(Decode(b)) == b,
// the verifiers accept them, every core field and the forks match xfs_db,
// and the block map btrees match xfs_db's bmap.
func TestDinodeAgainstXfsDB(t *testing.T) {
	t.Setenv("TZ", "UTC") // xfs_db prints timestamps in the local zone
	for _, name := range diFixtures {
		t.Run(name, func(t *testing.T) {
			m := diOpen(t, name)
			g := m.g
			isz := int(g.InodeSize)
			slots := m.slots(t)
			var cmds []string
			var compared []*Dinode
			dataFmts, attrFmts := map[uint8]int{}, map[uint8]int{}
			nfree := 0
			for _, s := range slots {
				b := s.bytes(isz)
				d, err := DecodeDinode(b)
				if err != nil {
					t.Fatalf("inode %d: %v", s.ino, err)
				}
				if got := d.Bytes(); !bytes.Equal(got, b) {
					t.Fatalf("inode %d: Encode(Decode(b)) != b", s.ino)
				}
				c := VerifyCtx{G: g, AG: s.agno, Daddr: s.cluster.Daddr}
				if err := VerifyDinode(b, s.ino, c); err != nil {
					t.Errorf("VerifyDinode(%d): %v", s.ino, err)
				}
				if d.IsFree() {
					nfree++
					if nfree > 4 {
						continue
					}
				} else {
					dataFmts[d.Format]++
					if d.HasAttrFork() {
						attrFmts[d.Aformat]++
					}
				}
				compared = append(compared, d)
				cmds = append(cmds, fmt.Sprintf("inode %d", s.ino), "p")
			}
			t.Logf("%d slots, %d free; allocated inodes' data fork formats %v, attr fork formats %v", len(slots), nfree, dataFmts, attrFmts)
			if name != "orphans" {
				for _, f := range []uint8{DinodeFmtDev, DinodeFmtLocal, DinodeFmtExtents, DinodeFmtBtree} {
					if dataFmts[f] == 0 {
						t.Errorf("no data fork of format %d in the fixture", f)
					}
				}
				for _, f := range []uint8{DinodeFmtLocal, DinodeFmtExtents} {
					if attrFmts[f] == 0 {
						t.Errorf("no attr fork of format %d in the fixture", f)
					}
				}
			}
			parts := diSplitInodes(testimg.DB(t, m.path, cmds...))
			if len(parts) != len(compared) {
				t.Fatalf("xfs_db printed %d inodes, asked %d", len(parts), len(compared))
			}
			nbtree := 0
			for i, d := range compared {
				diCompareCore(t, d, testimg.ParseFields(parts[i]))
				if d.IsFree() {
					continue
				}
				diCompareForks(t, d, parts[i])
				if d.Format == DinodeFmtBtree {
					nbtree++
					diCompareBmap(t, m, d, DataFork)
				}
				if d.HasAttrFork() && d.Aformat == DinodeFmtBtree {
					diCompareBmap(t, m, d, AttrFork)
				}
			}
			if nbtree == 0 {
				t.Error("no btree-format data fork found")
			}
		})
	}
}

// TestDinodeVerifyRejects corrupts real inodes one field at a time and
// checks that the verifier names the field.
func TestDinodeVerifyRejects(t *testing.T) {
	m := diOpen(t, "default")
	g := m.g
	isz := int(g.InodeSize)
	var reg, free diSlot
	for _, s := range m.slots(t) {
		d, _ := DecodeDinode(s.bytes(isz))
		if d.IsReg() && d.Format == DinodeFmtExtents && d.Nextents(AttrFork) == 0 && reg.buf == nil && d.Nextents(DataFork) > 0 {
			reg = s
		}
		if d.IsFree() && free.buf == nil {
			free = s
		}
	}
	if reg.buf == nil || free.buf == nil {
		t.Fatal("fixture lacks a regular extents file or a free inode")
	}
	c := VerifyCtx{G: g, AG: reg.agno, Daddr: reg.cluster.Daddr}
	st := fmt.Sprintf("dinode %d", reg.ino)
	fresh := func(s diSlot) []byte { return append([]byte(nil), s.bytes(isz)...) }
	edit := func(s diSlot, f func(d *Dinode)) []byte {
		d, _ := DecodeDinode(s.bytes(isz))
		f(d)
		b := make([]byte, isz)
		d.EncodeCRC(b)
		return b
	}
	if err := VerifyDinode(fresh(reg), reg.ino, c); err != nil {
		t.Fatalf("pristine: %v", err)
	}

	b := fresh(reg)
	b[DinodeCoreSize+40] ^= 0x10
	diWantCorrupt(t, "flipped byte", VerifyDinode(b, reg.ino, c), st, "di_crc")
	b = fresh(reg)
	b[0] = 'X'
	diWantCorrupt(t, "magic", VerifyDinode(b, reg.ino, c), st, "di_magic")
	diWantCorrupt(t, "wrong ino", VerifyDinode(edit(reg, func(d *Dinode) { d.Ino++ }), reg.ino, c), st, "di_ino")
	diWantCorrupt(t, "asked for another ino", VerifyDinode(fresh(reg), reg.ino+1, c), fmt.Sprintf("dinode %d", reg.ino+1), "di_ino")
	diWantCorrupt(t, "uuid", VerifyDinode(edit(reg, func(d *Dinode) { d.UUID[3]++ }), reg.ino, c), st, "di_uuid")
	diWantCorrupt(t, "forkoff at the end of the literal area", VerifyDinode(edit(reg, func(d *Dinode) {
		d.Forkoff = uint8(len(d.Literal) / 8)
	}), reg.ino, c), st, "di_forkoff")
	diWantCorrupt(t, "forkoff beyond the inode", VerifyDinode(edit(reg, func(d *Dinode) { d.Forkoff = 255 }), reg.ino, c), st, "di_forkoff")
	diWantCorrupt(t, "extents overflow the fork", VerifyDinode(edit(reg, func(d *Dinode) {
		d.SetNextents(DataFork, uint64(d.ForkSize(DataFork)/BmbtRecLen+1))
		d.Nblocks = 1 << 20
	}), reg.ino, c), st, "di_nextents")
	diWantCorrupt(t, "nblocks below nextents", VerifyDinode(edit(reg, func(d *Dinode) { d.Nblocks = 0; d.SetNextents(DataFork, 2) }), reg.ino, c), st, "di_nblocks")
	diWantCorrupt(t, "v3 pad", VerifyDinode(edit(reg, func(d *Dinode) { d.BigNextents = 1 }), reg.ino, c), st, "di_v3_pad")
	diWantCorrupt(t, "local regular file", VerifyDinode(edit(reg, func(d *Dinode) {
		d.Format = DinodeFmtLocal
		d.SetNextents(DataFork, 0)
		d.Nblocks = 0
		d.Size = 10
	}), reg.ino, c), st, "di_format")
	diWantCorrupt(t, "bad mode", VerifyDinode(edit(reg, func(d *Dinode) { d.Mode = 0o170644 }), reg.ino, c), st, "di_mode")
	diWantCorrupt(t, "attr extents without attr fork", VerifyDinode(edit(reg, func(d *Dinode) { d.Forkoff = 0; d.SmallAnextents = 1; d.Nblocks += 1 }), reg.ino, c), st, "di_anextents")
	diWantCorrupt(t, "version", VerifyDinode(edit(reg, func(d *Dinode) { d.Version = 2 }), reg.ino, c), st, "di_version")

	// A free inode: the data fork is not checked (xfs_dinode_verify,
	// case 0), but the attr fork checks and forkoff still apply.
	fc := VerifyCtx{G: g, AG: free.agno, Daddr: free.cluster.Daddr}
	fst := fmt.Sprintf("dinode %d", free.ino)
	if err := VerifyDinode(edit(free, func(d *Dinode) { d.Format = DinodeFmtBtree; d.SetNextents(DataFork, 7); d.Nblocks = 7 }), free.ino, fc); err != nil {
		t.Errorf("free inode with a stale btree data fork: %v", err)
	}
	diWantCorrupt(t, "free inode with attr extents", VerifyDinode(edit(free, func(d *Dinode) { d.SmallAnextents = 3 }), free.ino, fc), fst, "di_anextents")

	// The cluster buffer verifier checks next_unlinked.
	buf := append([]byte(nil), reg.buf...)
	SetDinodeNextUnlinked(buf[reg.off:reg.off+isz], g.AGBlocks<<g.InoPBLog+5)
	var ce *CorruptError
	if err := VerifyInodeBuf(buf, c); !errors.As(err, &ce) || ce.Field != "di_next_unlinked" {
		t.Errorf("VerifyInodeBuf with next_unlinked beyond the AG: %v", err)
	}
}

// TestDinodeHelpers checks ResetForFree, SetDinodeNextUnlinked, the
// timestamp forms and SetNextents on real inodes.
func TestDinodeHelpers(t *testing.T) {
	for _, name := range []string{"default", "nrext64"} {
		t.Run(name, func(t *testing.T) {
			m := diOpen(t, name)
			g := m.g
			isz := int(g.InodeSize)
			n := 0
			for _, s := range m.slots(t) {
				orig := s.bytes(isz)
				d, _ := DecodeDinode(orig)
				if d.IsFree() {
					continue
				}
				n++
				c := VerifyCtx{G: g, AG: s.agno, Daddr: s.cluster.Daddr}

				// next_unlinked: only those 4 bytes and the CRC change.
				b := append([]byte(nil), orig...)
				SetDinodeNextUnlinked(b, 77)
				if DinodeNextUnlinked(b) != 77 {
					t.Fatal("DinodeNextUnlinked")
				}
				if err := VerifyDinode(b, s.ino, c); err != nil {
					t.Fatalf("inode %d after SetDinodeNextUnlinked: %v", s.ino, err)
				}
				for i := range b {
					if b[i] != orig[i] && (i < DinodeNextUnlinkedOff || i >= DinodeCrcOff+4) {
						t.Fatalf("inode %d: byte %d changed", s.ino, i)
					}
				}
				d2, _ := DecodeDinode(orig)
				d2.NextUnlinked = 77
				b2 := make([]byte, isz)
				d2.EncodeCRC(b2)
				if !bytes.Equal(b, b2) {
					t.Fatalf("inode %d: NextUnlinked+EncodeCRC differs from SetDinodeNextUnlinked", s.ino)
				}

				// Legacy timestamps round-trip to the same times.
				if d.HasBigtime() {
					l, _ := DecodeDinode(orig)
					l.Flags2 &^= Diflag2Bigtime
					l2, _ := DecodeDinode(l.Bytes())
					if l2.Atime != d.Atime || l2.Mtime != d.Mtime || l2.Ctime != d.Ctime || l2.Crtime != d.Crtime {
						t.Fatalf("inode %d: legacy re-encoding changed the times", s.ino)
					}
				}

				// ResetForFree: what xfs_ifree leaves, accepted as a free inode.
				keep := (d.IsSymlink() || d.IsDir()) && d.Format == DinodeFmtLocal
				r, _ := DecodeDinode(orig)
				r.ResetForFree(keep, g.NewDiflags2())
				rb := make([]byte, isz)
				r.EncodeCRC(rb)
				if err := VerifyDinode(rb, s.ino, c); err != nil {
					t.Fatalf("inode %d after ResetForFree: %v", s.ino, err)
				}
				f, _ := DecodeDinode(rb)
				wantSize := uint64(0)
				if keep {
					wantSize = d.Size
				}
				if f.Mode != 0 || f.Gen != d.Gen+1 || f.Flags != 0 || f.Flags2 != g.NewDiflags2() || f.Forkoff != 0 ||
					f.Format != DinodeFmtExtents || f.Aformat != DinodeFmtExtents || f.Nextents(DataFork) != 0 ||
					f.Nextents(AttrFork) != 0 || f.Nblocks != 0 || f.Size != wantSize || f.NextUnlinked != NullAgino ||
					f.UID != d.UID || f.GID != d.GID || f.Nlink != d.Nlink || f.Mtime != d.Mtime || f.Crtime != d.Crtime ||
					!bytes.Equal(f.Literal, d.Literal) {
					t.Fatalf("inode %d: ResetForFree gave %+v from %+v", s.ino, f, d)
				}
			}
			if n < 10 {
				t.Fatalf("only %d allocated inodes", n)
			}
		})
	}
}

func TestSetNextentsUnions(t *testing.T) {
	d := &Dinode{Version: 3, Literal: make([]byte, 336)}
	d.SetNextents(DataFork, 70000)
	d.SetNextents(AttrFork, 300)
	if d.SmallNextents != 70000 || d.SmallAnextents != 300 || d.BigNextents != 0 {
		t.Fatalf("small counters: %+v", d)
	}
	d = &Dinode{Version: 3, Flags2: Diflag2Nrext64, Literal: make([]byte, 336)}
	d.SetNextents(DataFork, 1<<40)
	d.SetNextents(AttrFork, 1<<20)
	if d.BigNextents != 1<<40 || d.SmallNextents != 1<<20 || d.SmallAnextents != 0 ||
		d.Nextents(DataFork) != 1<<40 || d.Nextents(AttrFork) != 1<<20 {
		t.Fatalf("large counters: %+v", d)
	}
	b := d.Bytes()
	if be.Uint64(b[24:]) != 1<<40 || be.Uint32(b[76:]) != 1<<20 || be.Uint16(b[80:]) != 0 {
		t.Fatalf("large counters encoded at the wrong offsets")
	}
}

func TestTimestampForms(t *testing.T) {
	for _, ts := range []Timestamp{{0, 0}, {-1 << 31, 0}, {1<<31 - 1, 999999999}, {1764075161, 812178930}, {-5, 7}} {
		for _, bt := range []bool{false, true} {
			if got := DecodeTimestamp(ts.Encode(bt), bt); got != ts {
				t.Errorf("bigtime %v: %+v -> %#x -> %+v", bt, ts, ts.Encode(bt), got)
			}
		}
	}
	// xfs_bigtime_to_unix: ondisk 0 is the bigtime epoch, -2^31 s.
	if got := DecodeTimestamp(0, true); got.Sec != -1<<31 || got.Nsec != 0 {
		t.Errorf("bigtime 0 = %+v", got)
	}
	if got := DecodeTimestamp(uint64(1<<31)*1e9+5, true); got.Sec != 0 || got.Nsec != 5 {
		t.Errorf("bigtime unix epoch = %+v", got)
	}
	// Legacy seconds are signed.
	if got := DecodeTimestamp(0xffffffff00000003, false); got.Sec != -1 || got.Nsec != 3 {
		t.Errorf("legacy -1 = %+v", got)
	}
	// Every bigtime value round-trips, the largest too.
	for _, raw := range []uint64{^uint64(0), 1<<63 + 12345, 999999999} {
		if got := DecodeTimestamp(raw, true).Encode(true); got != raw {
			t.Errorf("bigtime %#x -> %#x", raw, got)
		}
	}
}

// TestResetForFreeMatchesKernel lets the kernel free the orphans of a
// frozen snapshot (a mount replays the log and processes the unlinked
// lists) and compares each freed inode it wrote with ResetForFree applied
// to the inode as it was before the mount. Inodes whose chunk the kernel
// released are skipped: their buffers are cancelled, never written.
func TestResetForFreeMatchesKernel(t *testing.T) {
	testimg.Need(t, "loop", "xfs_db")
	m := diOpen(t, "orphans")
	g := m.g
	isz := int(g.InodeSize)
	before := map[uint64]diSlot{}
	for _, s := range m.slots(t) {
		before[s.ino] = s
	}
	pre := map[uint64]*Dinode{}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		for _, chain := range testimg.OrphanChains(t, m.path, agno) {
			for _, agino := range chain {
				s, ok := before[g.Ino(agno, agino)]
				if !ok {
					t.Fatalf("orphan agino %d of AG %d is in no inode chunk", agino, agno)
				}
				pre[s.ino], _ = DecodeDinode(s.bytes(isz))
			}
		}
	}
	if len(pre) == 0 {
		t.Fatal("no orphans in the fixture")
	}
	testimg.Unmount(t, testimg.Mount(t, m.path))
	post := map[uint64]diSlot{}
	for _, s := range m.slots(t) {
		if _, ok := pre[s.ino]; ok {
			post[s.ino] = s
		}
	}
	if len(post) == 0 {
		t.Fatal("the kernel released every orphan's chunk; nothing to compare")
	}
	kinds := map[string]int{}
	for ino, s := range post {
		p := pre[ino]
		keep := (p.IsSymlink() || p.IsDir()) && p.Format == DinodeFmtLocal
		kinds[fmt.Sprintf("mode %o format %d keep %v", p.Mode&SIFMT, p.Format, keep)]++
		want, _ := DecodeDinode(p.Bytes())
		want.ResetForFree(keep, g.NewDiflags2())
		got, _ := DecodeDinode(s.bytes(isz))
		// Not ours to reproduce: one iversion bump per transaction, the LSN
		// of the kernel's last flush, and the CRC over those.
		want.ChangeCount, want.LSN, want.CRC = got.ChangeCount, got.LSN, got.CRC
		// The literal area is not cleared by the kernel, but fork
		// conversions during inactivation (btree → extents, the remote
		// symlink's block freed) may have been flushed before the free.
		want.Literal = got.Literal
		if fmt.Sprintf("%+v", want) != fmt.Sprintf("%+v", got) {
			t.Errorf("inode %d (mode %o format %d):\nkernel %+v\nours   %+v", ino, p.Mode, p.Format, got, want)
		}
		if err := VerifyDinode(s.bytes(isz), ino, VerifyCtx{G: g, AG: s.agno, Daddr: s.cluster.Daddr}); err != nil {
			t.Errorf("kernel-freed inode %d: %v", ino, err)
		}
	}
	t.Logf("%d orphans, %d still in chunks after the kernel freed them: %v", len(pre), len(post), kinds)
}

// ValidIno is xfs_verify_ino: a number whose bits above the agno field
// would alias another inode (1<<50 | 128 truncated to AG 0) is not valid;
// InoAt inverts the cluster addressing.
func TestValidInoRoundTrip(t *testing.T) {
	for _, name := range []string{"default", "bs1024", "isize2048"} {
		g := diOpen(t, name).g
		root := g.SB.RootIno
		if !g.ValidIno(root) {
			t.Fatalf("%s: root %d not valid", name, root)
		}
		for _, alias := range []uint64{1<<50 | root, 1<<63 | root, uint64(g.AGCount)<<g.AGInoLog | root} {
			if g.ValidIno(alias) {
				t.Errorf("%s: %d (an alias of %d) is valid", name, alias, root)
			}
		}
		loc, ok := g.ImapAligned(0, g.InoToAgino(root))
		if !ok {
			t.Fatalf("%s: no imap for the root", name)
		}
		if got := g.InoAt(loc.Daddr, loc.Offset); got != root {
			t.Errorf("%s: InoAt(%d, %d) = %d, want %d", name, loc.Daddr, loc.Offset, got, root)
		}
	}
}

package ondisk_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// attrFixtures have the populate.py files (xattr-local: shortform,
// xattr-remote: a leaf and a remote value, xattr-many: a node and leaves,
// long-link: a remote symlink) in different layouts: 4 KiB blocks, 1 KiB
// blocks (a btree-format attr fork), 2 KiB inodes (the long symlink local).
var attrFixtures = []string{"default", "bs1024", "isize2048"}

var attrBmapLine = regexp.MustCompile(`(?m)^(data|attr) offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d)`)

type attrExt struct{ off, fsb, n uint64 }

// attrFile is one populate.py file as xfs_db sees it.
type attrFile struct {
	ino       uint64
	data, att []attrExt
	fields    map[string]string // `p` of the inode
}

func attrLookup(t testing.TB, img, name string) attrFile {
	t.Helper()
	out := testimg.DB(t, img, "path /data/"+name, "p", "bmap -d", "bmap -a")
	f := attrFile{fields: testimg.ParseFields(out)}
	ino, err := testimg.ParseUint(f.fields["v3.inumber"])
	if err != nil {
		t.Fatalf("%s: v3.inumber %q", name, f.fields["v3.inumber"])
	}
	f.ino = ino
	for _, m := range attrBmapLine.FindAllStringSubmatch(out, -1) {
		off, _ := strconv.ParseUint(m[2], 10, 64)
		fsb, _ := strconv.ParseUint(m[3], 10, 64)
		n, _ := strconv.ParseUint(m[4], 10, 64)
		if m[1] == "data" {
			f.data = append(f.data, attrExt{off, fsb, n})
		} else {
			f.att = append(f.att, attrExt{off, fsb, n})
		}
	}
	return f
}

// dbStrings collects the quoted values of xfs_db lines "key = "value"".
func dbStrings(out, suffix string) []string {
	var s []string
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, " = ")
		if ok && strings.HasSuffix(strings.TrimSpace(k), suffix) {
			u, err := strconv.Unquote(strings.TrimSpace(v))
			if err == nil {
				s = append(s, u)
			}
		}
	}
	return s
}

// TestAttrBlocksAgainstXfsDB reads every attr fork block of the fixtures'
// xattr files: each passes its verifier and the owner check, re-encodes
// to the same bytes, and decodes to what xfs_db prints (counts, level,
// firstused, hashes, names, local values, remote headers). A flipped byte
// is a CRC error; a bad field with a fixed CRC is named.
func TestAttrBlocksAgainstXfsDB(t *testing.T) {
	for _, name := range attrFixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			g := m.g
			bs := int(g.BlockSize)
			kinds := map[string]int{}
			for _, file := range []string{"xattr-remote", "xattr-many"} {
				f := attrLookup(t, m.path, file)
				if len(f.att) == 0 {
					t.Fatalf("%s: no attr fork blocks", file)
				}
				for _, e := range f.att {
					for i := uint64(0); i < e.n; i++ {
						dablk, fsb := e.off+i, e.fsb+i
						ctx := ondisk.VerifyCtx{G: g, AG: g.FsbToAgno(fsb), Daddr: g.FsbToDaddr(fsb)}
						b := m.read(t, ctx.Daddr, bs)
						db := testimg.DB(t, m.path, "path /data/"+file, fmt.Sprintf("ablock %d", dablk), "p")
						fields := testimg.ParseFields(db)
						what := fmt.Sprintf("%s inode %d attr block %d (daddr %d)", file, f.ino, dablk, ctx.Daddr)
						switch {
						case bytes.Equal(b[:4], []byte("XARM")):
							kinds["remote"]++
							checkRmt(t, what, b, ctx, f.ino, fields)
						case b[8] == 0x3e && b[9] == 0xbe:
							kinds["node"]++
							checkNode(t, what, b, ctx, f.ino, db, fields)
						default:
							kinds["leaf"]++
							checkLeaf(t, what, b, ctx, f.ino, db, fields)
						}
					}
				}
			}
			if kinds["node"] == 0 || kinds["leaf"] < 2 || kinds["remote"] == 0 {
				t.Errorf("block kinds seen %v: want nodes, leaves and remote values", kinds)
			}
			t.Logf("attr blocks: %v", kinds)
		})
	}
}

func checkCorrupt(t *testing.T, what string, b []byte, ctx ondisk.VerifyCtx, verify func([]byte, ondisk.VerifyCtx) error,
	crcField string, mutate func([]byte), field string) {
	t.Helper()
	c := bytes.Clone(b)
	c[len(c)-1] ^= 0x5a
	if err := verify(c, ctx); err == nil || !strings.Contains(err.Error(), crcField) {
		t.Errorf("%s: a flipped byte: %v, want a %s error", what, err, crcField)
	}
	c = bytes.Clone(b)
	mutate(c)
	ondisk.UpdateCksum(c, 12)
	err := verify(c, ctx)
	if err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), fmt.Sprintf("daddr %d", ctx.Daddr)) {
		t.Errorf("%s: bad %s: %v, want an error naming it and the block", what, field, err)
	}
}

func checkLeaf(t *testing.T, what string, b []byte, ctx ondisk.VerifyCtx, ino uint64, db string, fields map[string]string) {
	t.Helper()
	if err := ondisk.KindAttrDA.Verify(b, ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := ondisk.CheckDAOwner(b, ctx, ino); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	l, err := ondisk.DecodeAttr3Leaf(b)
	if err != nil {
		t.Fatal(err)
	}
	c := bytes.Clone(b)
	l.Encode(c)
	if !bytes.Equal(c, b) {
		t.Errorf("%s: Encode(Decode(b)) != b", what)
	}
	z := make([]byte, len(b))
	l.Encode(z)
	for i := range l.Entries {
		n, err := l.Name(b, i)
		if err != nil {
			t.Fatalf("%s entry %d: %v", what, i, err)
		}
		n.Encode(z, int(l.Entries[i].Nameidx))
	}
	z[12], z[13], z[14], z[15] = b[12], b[13], b[14], b[15]
	if hdr := ondisk.Attr3LeafHdrLen + len(l.Entries)*ondisk.AttrLeafEntryLen; !bytes.Equal(z[:hdr], b[:hdr]) {
		t.Errorf("%s: header and entries encoded from scratch differ", what)
	}
	for i, e := range l.Entries {
		n, _ := l.Name(b, i)
		o := int(e.Nameidx)
		end := o + 3 + len(n.Name) + len(n.Value)
		if !n.Local {
			end = o + 9 + len(n.Name)
		}
		if !bytes.Equal(z[o:end], b[o:end]) {
			t.Errorf("%s: name structure %d encoded from scratch differs", what, i)
		}
	}
	for k, v := range map[string]uint64{"hdr.count": uint64(l.Count), "hdr.usedbytes": uint64(l.Usedbytes),
		"hdr.firstused": uint64(l.FirstUsed(len(b))), "hdr.info.owner": l.Info.Owner, "hdr.info.bno": l.Info.Blkno,
		"hdr.info.hdr.forw": uint64(l.Info.Forw), "hdr.info.hdr.back": uint64(l.Info.Back)} {
		if got, err := testimg.ParseUint(fields[k]); err != nil || got != v {
			t.Errorf("%s: %s = %d, xfs_db %q", what, k, v, fields[k])
		}
	}
	recs, err := testimg.ParseRecords(db, "entries")
	if err != nil || len(recs) != len(l.Entries) {
		t.Fatalf("%s: xfs_db entries %d (%v), decoded %d", what, len(recs), err, len(l.Entries))
	}
	var names, values []string
	for i, e := range l.Entries {
		r := recs[i]
		if r["hashval"] != uint64(e.Hashval) || r["nameidx"] != uint64(e.Nameidx) ||
			r["local"] != uint64(e.Flags&ondisk.AttrLocal) || r["root"] != uint64(e.Flags&ondisk.AttrRoot)>>1 {
			t.Errorf("%s: entry %d %+v, xfs_db %v", what, i, e, r)
		}
		n, _ := l.Name(b, i)
		names = append(names, string(n.Name))
		if n.Local {
			values = append(values, string(n.Value))
		}
	}
	if want := dbStrings(db, ".name"); strings.Join(want, "\x00") != strings.Join(names, "\x00") {
		t.Errorf("%s: names %q, xfs_db %q", what, names, want)
	}
	if want := dbStrings(db, ".value"); strings.Join(want, "\x00") != strings.Join(values, "\x00") {
		t.Errorf("%s: local values %q, xfs_db %q", what, values, want)
	}
	checkCorrupt(t, what, b, ctx, ondisk.VerifyAttrDA, "crc", func(c []byte) {
		be16(c[60:], 8) // firstused inside the header
	}, "hdr.firstused")
	checkCorrupt(t, what, b, ctx, ondisk.VerifyAttrDA, "crc", func(c []byte) {
		be16(c[ondisk.Attr3LeafHdrLen+4:], uint16(len(c))) // nameidx past the block
	}, "nameidx")
	if err := ondisk.CheckDAOwner(b, ctx, ino+1); err == nil || !strings.Contains(err.Error(), "hdr.info.owner") {
		t.Errorf("%s: owner check against another inode: %v", what, err)
	}
}

func checkNode(t *testing.T, what string, b []byte, ctx ondisk.VerifyCtx, ino uint64, db string, fields map[string]string) {
	t.Helper()
	if err := ondisk.KindAttrDA.Verify(b, ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := ondisk.CheckDAOwner(b, ctx, ino); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	n, err := ondisk.DecodeDA3Node(b)
	if err != nil {
		t.Fatal(err)
	}
	c := bytes.Clone(b)
	n.Encode(c)
	if !bytes.Equal(c, b) {
		t.Errorf("%s: Encode(Decode(b)) != b", what)
	}
	for k, v := range map[string]uint64{"hdr.count": uint64(n.Count), "hdr.level": uint64(n.Level), "hdr.info.owner": n.Info.Owner} {
		if got, err := testimg.ParseUint(fields[k]); err != nil || got != v {
			t.Errorf("%s: %s = %d, xfs_db %q", what, k, v, fields[k])
		}
	}
	recs, err := testimg.ParseRecords(db, "btree")
	if err != nil || len(recs) != len(n.Entries) {
		t.Fatalf("%s: xfs_db btree %d (%v), decoded %d", what, len(recs), err, len(n.Entries))
	}
	for i, e := range n.Entries {
		if recs[i]["hashval"] != uint64(e.Hashval) || recs[i]["before"] != uint64(e.Before) {
			t.Errorf("%s: entry %d %+v, xfs_db %v", what, i, e, recs[i])
		}
	}
	checkCorrupt(t, what, b, ctx, ondisk.VerifyAttrDA, "crc", func(c []byte) { be16(c[58:], 0) }, "hdr.level")
	checkCorrupt(t, what, b, ctx, ondisk.VerifyAttrDA, "crc", func(c []byte) { be16(c[8:], 0x1234) }, "hdr.info.magic")
}

func checkRmt(t *testing.T, what string, b []byte, ctx ondisk.VerifyCtx, ino uint64, fields map[string]string) {
	t.Helper()
	if err := ondisk.KindAttrRmt.Verify(b, ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	h, err := ondisk.DecodeAttr3RmtHdr(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ondisk.CheckAttr3Rmt(b, ctx, ino, h.Offset, h.Bytes); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	c := bytes.Clone(b)
	h.Encode(c)
	if !bytes.Equal(c, b) {
		t.Errorf("%s: Encode(Decode(b)) != b", what)
	}
	for k, v := range map[string]uint64{"hdr.offset": uint64(h.Offset), "hdr.bytes": uint64(h.Bytes), "hdr.owner": h.Owner, "hdr.bno": h.Blkno} {
		if got, err := testimg.ParseUint(fields[k]); err != nil || got != v {
			t.Errorf("%s: %s = %d, xfs_db %q", what, k, v, fields[k])
		}
	}
	checkCorrupt(t, what, b, ctx, ondisk.VerifyAttr3Rmt, "rm_crc", func(c []byte) { be32(c[8:], uint32(len(c))) }, "rm_bytes")
	if err := ondisk.CheckAttr3Rmt(b, ctx, ino+1, h.Offset, h.Bytes); err == nil || !strings.Contains(err.Error(), "rm_owner") {
		t.Errorf("%s: owner check against another inode: %v", what, err)
	}
}

func be16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }
func be32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }

// attrInode reads file's inode from the image.
func attrInode(t testing.TB, m *hdrImg, f attrFile) *ondisk.Dinode {
	t.Helper()
	g := m.g
	agno, agino := g.InoToAgno(f.ino), g.InoToAgino(f.ino)
	loc, ok := g.ImapAligned(agno, agino)
	if !ok {
		t.Skip("the fixture's inode chunks are not aligned: locating an inode needs the inobt")
	}
	buf := m.read(t, loc.Daddr, loc.Len*ondisk.BBSize)
	raw := buf[loc.Offset : loc.Offset+int(g.InodeSize)]
	if err := ondisk.VerifyDinode(raw, f.ino, ondisk.VerifyCtx{G: g, AG: agno, Daddr: loc.Daddr}); err != nil {
		t.Fatal(err)
	}
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAttrShortformAgainstXfsDB decodes xattr-local's shortform attr fork
// as xfs_db prints it, re-encodes it byte for byte, and refuses a list
// whose entry runs past totsize.
func TestAttrShortformAgainstXfsDB(t *testing.T) {
	for _, name := range attrFixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			f := attrLookup(t, m.path, "xattr-local")
			d := attrInode(t, m, f)
			b, err := d.LocalData(ondisk.AttrFork)
			if err != nil {
				t.Fatal(err)
			}
			sf, err := ondisk.DecodeAttrSF(b, d.Ino)
			if err != nil {
				t.Fatal(err)
			}
			db := testimg.DB(t, m.path, "path /data/xattr-local", "p a")
			var names, values []string
			for _, e := range sf.Entries {
				names = append(names, string(e.Name))
				values = append(values, string(e.Value))
			}
			if want := dbStrings(db, ".name"); strings.Join(want, "\x00") != strings.Join(names, "\x00") || len(names) != 2 {
				t.Errorf("names %q, xfs_db %q", names, want)
			}
			if want := dbStrings(db, ".value"); strings.Join(want, "\x00") != strings.Join(values, "\x00") {
				t.Errorf("values %q, xfs_db %q", values, want)
			}
			if sf.Entries[1].Flags != ondisk.AttrRoot {
				t.Errorf("trusted.t flags %#x", sf.Entries[1].Flags)
			}
			z := make([]byte, len(b))
			if n := sf.Encode(z); n != len(b) || !bytes.Equal(z, b) {
				t.Errorf("Encode(Decode(b)) != b")
			}
			c := bytes.Clone(b)
			c[ondisk.AttrSFHdrLen+1] = 200 // valuelen of entry 0
			if _, err := ondisk.DecodeAttrSF(c, d.Ino); err == nil || !strings.Contains(err.Error(), "list[0].namelen") {
				t.Errorf("an entry past totsize: %v", err)
			}
		})
	}
}

// TestSymlinkBlockAgainstXfsDB reads long-link's remote block(s) (local in
// 2 KiB inodes): verified, decoded as xfs_db prints the header, re-encoded
// byte for byte, the target as xfs_db prints it; a bad field is named.
func TestSymlinkBlockAgainstXfsDB(t *testing.T) {
	remote := 0
	for _, name := range attrFixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			g := m.g
			f := attrLookup(t, m.path, "long-link")
			if len(f.data) == 0 {
				d := attrInode(t, m, f)
				b, err := d.LocalData(ondisk.DataFork)
				if err != nil || ondisk.VerifySymlinkTarget(b, d.Ino) != nil || !strings.HasPrefix(string(b), "/long-symlink-component-00/") {
					t.Errorf("local target %q: %v", b, err)
				}
				if err := ondisk.VerifySymlinkTarget(append(bytes.Clone(b[:5]), 0, 'x'), d.Ino); err == nil {
					t.Error("a target with a NUL byte passes")
				}
				return
			}
			remote++
			e := f.data[0]
			ctx := ondisk.VerifyCtx{G: g, AG: g.FsbToAgno(e.fsb), Daddr: g.FsbToDaddr(e.fsb)}
			b := m.read(t, ctx.Daddr, int(e.n)*int(g.BlockSize))
			if err := ondisk.KindSymlink.Verify(b, ctx); err != nil {
				t.Fatal(err)
			}
			h, err := ondisk.DecodeSymlinkHdr(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := ondisk.CheckSymlinkBlock(b, ctx, f.ino, 0, h.Bytes); err != nil {
				t.Fatal(err)
			}
			c := bytes.Clone(b)
			h.Encode(c)
			if !bytes.Equal(c, b) {
				t.Errorf("Encode(Decode(b)) != b")
			}
			db := testimg.DB(t, m.path, "path /data/long-link", "dblock 0", "p")
			fields := testimg.ParseFields(db)
			for k, v := range map[string]uint64{"offset": uint64(h.Offset), "bytes": uint64(h.Bytes), "owner": h.Owner, "bno": h.Blkno} {
				if got, err := testimg.ParseUint(fields[k]); err != nil || got != v {
					t.Errorf("%s = %d, xfs_db %q", k, v, fields[k])
				}
			}
			target := string(b[ondisk.SymlinkHdrLen : ondisk.SymlinkHdrLen+int(h.Bytes)])
			if want := dbStrings(db, "data"); len(want) != 1 || want[0] != target {
				t.Errorf("target %q, xfs_db %q", target, want)
			}
			checkCorrupt(t, "symlink block", b, ctx, ondisk.VerifySymlinkBlock, "sl_crc", func(c []byte) { be32(c[4:], 2000) }, "sl_offset")
			if err := ondisk.CheckSymlinkBlock(b, ctx, f.ino, 0, h.Bytes+1); err == nil || !strings.Contains(err.Error(), "sl_bytes") {
				t.Errorf("a wrong piece length: %v", err)
			}
		})
	}
	if remote == 0 {
		t.Error("no fixture has a remote symlink")
	}
}

package testimg

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// NullAgino is the AG inode number xfs_db prints as "null" (NULLAGINO): an empty unlinked bucket,
// the end of a chain.
const NullAgino = 0xffffffff

// dbErrors match the lines xfs_db 6.1 prints for a failed command. It prints them on stdout and
// still exits 0, so DB looks for them.
var dbErrors = regexp.MustCompile(`^(bad |no current |command .* not found|field .* not found|invalid |unknown |Metadata CRC error|Metadata corruption|.*: cannot |.*[Ee]rror)`)

func runDB(t testing.TB, img string, expert bool, cmds []string) (string, error) {
	t.Helper()
	Need(t, "xfs_db")
	args := []string{"-r"}
	if expert {
		args = []string{"-x"}
	}
	args = append(args, "-f")
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, img)
	cmd := exec.Command(tool("xfs_db"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("xfs_db %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func checkDB(t testing.TB, img string, cmds []string, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " = ") || !dbErrors.MatchString(line) {
			continue
		}
		t.Fatalf("testimg: xfs_db %s on %s: %q\n%s", quoteCmds(cmds), img, line, out)
	}
}

func quoteCmds(cmds []string) string {
	var b strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&b, "-c %q ", c)
	}
	return strings.TrimSpace(b.String())
}

// DB runs `xfs_db -r -f -c CMD...` on the image and returns its output. The test fails if xfs_db
// fails or any command reports an error (xfs_db prints those on stdout and exits 0). Works on an
// image with a dirty log too.
func DB(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	out, err := runDB(t, img, false, cmds)
	if err != nil {
		t.Fatalf("testimg: %v", err)
	}
	checkDB(t, img, cmds, out)
	return out
}

// DBUnchecked is DB without the check for error lines: for images that are meant to be corrupt.
// It fails the test only if xfs_db cannot run or exits non-zero.
func DBUnchecked(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	out, err := runDB(t, img, false, cmds)
	if err != nil {
		t.Fatalf("testimg: %v", err)
	}
	return out
}

// DBWrite runs `xfs_db -x -f -c CMD...`: expert mode, which writes to the image (to craft
// corruption: `write -d magicnum 0`, `write -c crc 0`, ...). Checked as DB.
func DBWrite(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	out, err := runDB(t, img, true, cmds)
	if err != nil {
		t.Fatalf("testimg: %v", err)
	}
	checkDB(t, img, cmds, out)
	return out
}

// DBWriteUnchecked is DBWrite without the check for error lines: for blocks
// that are corrupt before the writes (xfs_db reports their bad CRC). It
// fails the test only if xfs_db cannot run or exits non-zero.
func DBWriteUnchecked(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	out, err := runDB(t, img, true, cmds)
	if err != nil {
		t.Fatalf("testimg: %v", err)
	}
	return out
}

// A Field is one `name = value` line of xfs_db print output.
type Field struct {
	Name, Value string
}

// ParseFieldList returns the `name = value` lines of xfs_db output in order, duplicates kept (as
// when one run prints the same field of several AGs). The value is the rest of the line, trimmed:
// "0x58414749", "null", "3 (btree)", "0x16eceab4 (correct)", "[startino] " for an array header.
// Lines without " = " (the records that follow an array header) are skipped.
func ParseFieldList(out string) []Field {
	var fields []Field
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(line, " = ")
		if !ok || strings.ContainsAny(name, " \t") {
			continue
		}
		fields = append(fields, Field{Name: name, Value: strings.TrimSpace(value)})
	}
	return fields
}

// ParseFields returns the `name = value` lines of xfs_db output as a map (the last value of a
// name wins). See ParseFieldList.
func ParseFields(out string) map[string]string {
	m := make(map[string]string)
	for _, f := range ParseFieldList(out) {
		m[f.Name] = f.Value
	}
	return m
}

// ParseUint parses a number as xfs_db prints it: decimal, 0x hex, 0 octal (modes: "0100644"),
// with any trailing annotation ignored ("3 (btree)", "0x1dd8a076 (correct)"). "null" is all ones; a
// negative number (an rmap owner: "-5" is XFS_RMAP_OWN_AG) is its two's complement.
func ParseUint(v string) (uint64, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	if v == "null" {
		return ^uint64(0), nil
	}
	if strings.HasPrefix(v, "-") { // rmap owners: "-3" is XFS_RMAP_OWN_FS
		n, err := strconv.ParseInt(v, 0, 64)
		return uint64(n), err
	}
	return strconv.ParseUint(v, 0, 64)
}

// arrayHeader matches `name[lo-hi] = ` or `name[i] = ` at the start of a line.
func arrayHeader(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\[(\d+)(?:-(\d+))?\] = (.*)$`)
}

var arrayEntry = regexp.MustCompile(`(\d+):(\S+)`)

// ParseArray parses every `name[lo-hi] = i:v i:v ...` line of xfs_db output for name ("unlinked",
// "ptrs") into index → value, in the order printed; several lines (several blocks printed in one
// run) are concatenated. xfs_db 6.1 prints an array of scalars on one line. For the AGI unlinked
// buckets it prints only the non-null entries — `unlinked[0-63] = 14:142 15:143 ` — and nothing
// after the "= " when all are null. It reports false if no such line is found.
func ParseArray(out, name string) ([]ArrayEntry, bool) {
	var entries []ArrayEntry
	found := false
	for _, m := range arrayHeader(name).FindAllStringSubmatch(out, -1) {
		found = true
		for _, e := range arrayEntry.FindAllStringSubmatch(m[3], -1) {
			i, _ := strconv.Atoi(e[1])
			entries = append(entries, ArrayEntry{Index: i, Value: e[2]})
		}
	}
	return entries, found
}

// An ArrayEntry is one `i:v` of an xfs_db array.
type ArrayEntry struct {
	Index int
	Value string
}

// ParseUnlinked parses the `unlinked[0-63] = ...` line of `agi N` `p unlinked` (or `p`) into the 64
// bucket heads, NullAgino where xfs_db printed nothing or "null".
func ParseUnlinked(out string) ([64]uint32, error) {
	var b [64]uint32
	for i := range b {
		b[i] = NullAgino
	}
	entries, ok := ParseArray(out, "unlinked")
	if !ok {
		return b, fmt.Errorf("testimg: no unlinked[...] line in xfs_db output:\n%s", out)
	}
	for _, e := range entries {
		if e.Index < 0 || e.Index >= 64 {
			return b, fmt.Errorf("testimg: unlinked bucket %d out of range", e.Index)
		}
		v, err := ParseUint(e.Value)
		if err != nil {
			return b, fmt.Errorf("testimg: unlinked[%d] = %q: %v", e.Index, e.Value, err)
		}
		b[e.Index] = uint32(v)
	}
	return b, nil
}

// A Record is one record or key of an xfs_db array of structures, by field name.
type Record map[string]uint64

// ParseRecords parses every array of structures called name ("recs", "keys") in xfs_db output.
// xfs_db 6.1 prints the field names on the header line and then one record a line, indexed from
// the header's lo:
//
//	recs[1-60] = [startino,holemask,count,freecount,free]
//	1:[131136,0,64,0,0]
//	2:[131200,0,64,50,0xffffffffffffc000]
//
// (a filesystem without sparse inodes prints [startino,freecount,free]; node blocks print
// `keys[1-2] = [startino]` and then `1:[131136]`). Records of several blocks printed in one run are
// concatenated in order. Numbers are decimal or 0x hex.
func ParseRecords(out, name string) ([]Record, error) {
	lines := strings.Split(out, "\n")
	header := arrayHeader(name)
	var recs []Record
	for i := 0; i < len(lines); i++ {
		m := header.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		rest := strings.TrimSpace(m[3])
		if !strings.HasPrefix(rest, "[") {
			return nil, fmt.Errorf("testimg: %s: no field list in %q", name, lines[i])
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil, fmt.Errorf("testimg: %s: unterminated field list in %q", name, lines[i])
		}
		names := strings.Split(rest[1:end], ",")
		// Records follow on the same line (if any) and on the next lines, up to the next field.
		text := rest[end+1:]
		for i+1 < len(lines) && !strings.Contains(lines[i+1], " = ") {
			i++
			text += " " + lines[i]
		}
		for _, rm := range recordEntry.FindAllStringSubmatch(text, -1) {
			vals := strings.Split(rm[2], ",")
			if len(vals) != len(names) {
				return nil, fmt.Errorf("testimg: %s record %s: %d values for %d fields", name, rm[1], len(vals), len(names))
			}
			r := make(Record, len(names))
			for k, n := range names {
				v, err := ParseUint(vals[k])
				if err != nil {
					return nil, fmt.Errorf("testimg: %s record %s field %s: %v", name, rm[1], n, err)
				}
				r[n] = v
			}
			recs = append(recs, r)
		}
	}
	return recs, nil
}

var recordEntry = regexp.MustCompile(`(\d+):\[([^\]]*)\]`)

// Superblock returns the fields of the primary superblock (`sb 0` `p`).
func Superblock(t testing.TB, img string) map[string]string {
	t.Helper()
	return ParseFields(DB(t, img, "sb 0", "p"))
}

// AGI returns the fields of AG agno's AGI (`agi N` `p`).
func AGI(t testing.TB, img string, agno uint32) map[string]string {
	t.Helper()
	return ParseFields(DB(t, img, fmt.Sprintf("agi %d", agno), "p"))
}

// Unlinked returns AG agno's 64 unlinked bucket heads (AG inode numbers, NullAgino if empty).
func Unlinked(t testing.TB, img string, agno uint32) [64]uint32 {
	t.Helper()
	b, err := ParseUnlinked(DB(t, img, fmt.Sprintf("agi %d", agno), "p unlinked"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Inode returns the fields of inode ino (`inode N` `p`): core.magic, core.mode, core.format
// ("2 (extents)"), core.nextents, next_unlinked ("null" or an AG inode number), v3.inumber, and
// the fork's fields (u3.bmx[...], u3.sfdir3..., a.sfattr...).
func Inode(t testing.TB, img string, ino uint64) map[string]string {
	t.Helper()
	return ParseFields(DB(t, img, fmt.Sprintf("inode %d", ino), "p"))
}

// Geometry is what the helpers need of the superblock to turn AG numbers into inode numbers and
// filesystem blocks.
type Geometry struct {
	AGCount   uint32
	AGBlkLog  uint
	InoPBLog  uint
	BlockSize uint32
	InodeSize uint32
}

// Geo reads the geometry of the image.
func Geo(t testing.TB, img string) Geometry {
	t.Helper()
	f := ParseFields(DB(t, img, "sb 0", "p agcount agblklog inopblog blocksize inodesize"))
	n := func(k string) uint64 {
		v, err := ParseUint(f[k])
		if err != nil {
			t.Fatalf("testimg: sb %s = %q: %v", k, f[k], err)
		}
		return v
	}
	return Geometry{
		AGCount:   uint32(n("agcount")),
		AGBlkLog:  uint(n("agblklog")),
		InoPBLog:  uint(n("inopblog")),
		BlockSize: uint32(n("blocksize")),
		InodeSize: uint32(n("inodesize")),
	}
}

// Ino returns the inode number of AG inode agino in AG agno.
func (g Geometry) Ino(agno, agino uint32) uint64 {
	return uint64(agno)<<(g.AGBlkLog+g.InoPBLog) | uint64(agino)
}

// FSBlock returns the filesystem block number (xfs_db `fsblock`) of AG block agbno in AG agno.
func (g Geometry) FSBlock(agno, agbno uint32) uint64 {
	return uint64(agno)<<g.AGBlkLog | uint64(agbno)
}

// InobtRecords returns every record of AG agno's inode btree (finobt: the free inode btree), in
// key order, read with xfs_db level by level from the AGI's root: `startino`, `freecount`, `free`
// and, on sparse-inode filesystems, `holemask` and `count`.
func InobtRecords(t testing.TB, img string, agno uint32, finobt bool) []Record {
	t.Helper()
	g := Geo(t, img)
	agi := AGI(t, img, agno)
	rootKey, levelKey, typ := "root", "level", "inobt"
	if finobt {
		rootKey, levelKey, typ = "free_root", "free_level", "finobt"
	}
	if _, ok := agi[rootKey]; !ok {
		t.Fatalf("testimg: AG %d has no %s", agno, rootKey)
	}
	root, err1 := ParseUint(agi[rootKey])
	level, err2 := ParseUint(agi[levelKey])
	if err1 != nil || err2 != nil || level == 0 {
		t.Fatalf("testimg: AG %d: %s = %q, %s = %q", agno, rootKey, agi[rootKey], levelKey, agi[levelKey])
	}
	blocks := []uint64{root}
	var numrecs uint64
	// Print whole blocks: xfs_db fails `p recs` on a block without records (an empty AG's root).
	show := func() string {
		var cmds []string
		for _, b := range blocks {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", g.FSBlock(agno, uint32(b))), "type "+typ, "p")
		}
		out := DB(t, img, cmds...)
		var n uint64
		for _, f := range ParseFieldList(out) {
			if f.Name == "numrecs" {
				v, _ := ParseUint(f.Value)
				n += v
			}
		}
		numrecs = n
		return out
	}
	for l := level; l > 1; l-- {
		ptrs, _ := ParseArray(show(), "ptrs")
		if uint64(len(ptrs)) != numrecs {
			t.Fatalf("testimg: AG %d %s level %d: %d ptrs, numrecs %d", agno, typ, l-1, len(ptrs), numrecs)
		}
		blocks = blocks[:0]
		for _, p := range ptrs {
			v, err := ParseUint(p.Value)
			if err != nil {
				t.Fatalf("testimg: AG %d %s ptr %q: %v", agno, typ, p.Value, err)
			}
			blocks = append(blocks, v)
		}
	}
	recs, err := ParseRecords(show(), "recs")
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(recs)) != numrecs {
		t.Fatalf("testimg: AG %d %s: %d records, numrecs %d", agno, typ, len(recs), numrecs)
	}
	return recs
}

// OrphanChains returns, for AG agno, each non-empty unlinked bucket's chain of AG inode numbers,
// following the inodes' next_unlinked fields; chains[b] is bucket b's chain (nil if empty). A chain
// that loops or meets another fails the test.
func OrphanChains(t testing.TB, img string, agno uint32) [64][]uint32 {
	t.Helper()
	g := Geo(t, img)
	heads := Unlinked(t, img, agno)
	var chains [64][]uint32
	seen := map[uint32]int{} // agino -> bucket
	tails := map[int]uint32{}
	for b, agino := range heads {
		if agino != NullAgino {
			tails[b] = agino
		}
	}
	// One xfs_db run per step along all chains at once.
	for len(tails) > 0 {
		var order []int
		var cmds []string
		for b := range 64 {
			agino, ok := tails[b]
			if !ok {
				continue
			}
			if prev, dup := seen[agino]; dup {
				t.Fatalf("testimg: AG %d bucket %d reaches agino %d again (bucket %d): %v", agno, b, agino, prev, chains[b])
			}
			seen[agino] = b
			chains[b] = append(chains[b], agino)
			order = append(order, b)
			cmds = append(cmds, fmt.Sprintf("inode %d", g.Ino(agno, agino)), "p next_unlinked")
		}
		fields := ParseFieldList(DB(t, img, cmds...))
		if len(fields) != len(order) {
			t.Fatalf("testimg: AG %d: %d next_unlinked fields for %d inodes", agno, len(fields), len(order))
		}
		for i, b := range order {
			v, err := ParseUint(fields[i].Value)
			if err != nil || fields[i].Name != "next_unlinked" {
				t.Fatalf("testimg: AG %d agino %d: %s = %q", agno, tails[b], fields[i].Name, fields[i].Value)
			}
			if uint32(v) == NullAgino {
				delete(tails, b)
			} else {
				tails[b] = uint32(v)
			}
		}
	}
	return chains
}

// TreeRecords returns every leaf record of the short-form btree of type typ (an xfs_db type:
// "bnobt", "cntbt", "rmapbt", "refcntbt", ...) rooted at agbno root of AG agno with the given
// number of levels, in key order, read with xfs_db a level at a time.
func TreeRecords(t testing.TB, img string, agno uint32, root uint32, levels int, typ string) []Record {
	t.Helper()
	g := Geo(t, img)
	blocks := []uint64{uint64(root)}
	for l := levels; ; l-- {
		var cmds []string
		for _, b := range blocks {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", g.FSBlock(agno, uint32(b))), "type "+typ, "p")
		}
		out := DB(t, img, cmds...)
		if l <= 1 {
			recs, err := ParseRecords(out, "recs")
			if err != nil {
				t.Fatal(err)
			}
			return recs
		}
		ptrs, _ := ParseArray(out, "ptrs")
		blocks = blocks[:0:0]
		for _, p := range ptrs {
			v, err := ParseUint(p.Value)
			if err != nil {
				t.Fatalf("testimg: AG %d %s ptr %q: %v", agno, typ, p.Value, err)
			}
			blocks = append(blocks, v)
		}
	}
}

// RefcountRecords returns AG agno's refcount btree records, in key order (shared extents first,
// then CoW staging extents): `startblock`, `blockcount`, `refcount` and `cowflag`.
func RefcountRecords(t testing.TB, img string, agno uint32) []Record {
	t.Helper()
	f := ParseFields(DB(t, img, fmt.Sprintf("agf %d", agno), "p refcntroot refcntlevel"))
	root, err1 := ParseUint(f["refcntroot"])
	level, err2 := ParseUint(f["refcntlevel"])
	if err1 != nil || err2 != nil || level == 0 {
		t.Fatalf("testimg: AG %d: refcntroot %q refcntlevel %q", agno, f["refcntroot"], f["refcntlevel"])
	}
	return TreeRecords(t, img, agno, uint32(root), int(level), "refcntbt")
}

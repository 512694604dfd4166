package ondisk_test

// Helpers shared by the AG header and btree tests: open a fixture image,
// read its sectors and blocks directly, and parse what xfs_db prints.
// Names start with "hdr" to stay clear of other test files of the package.

import (
	"fmt"
	"math/bits"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// hdrFixtures are the v5 fixtures whose headers and btrees are compared with
// xfs_db: every mkfs variant the brief names, plus images with orphans.
var hdrFixtures = []string{"default", "bs1024", "sect4096", "nosparse", "rmapbt", "nofinobt",
	"isize2048", "nrext64", "agcount1", "orphans", "orphans-rmap", "orphans-nosparse"}

// hdrImg is an open fixture image.
type hdrImg struct {
	path string
	f    *os.File
	g    *ondisk.Geometry
}

func hdrOpen(t testing.TB, name string) *hdrImg {
	t.Helper()
	testimg.Need(t, "xfs_db", "zstd")
	p := testimg.Path(t, name)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ondisk.NewGeometry(sb)
	if err != nil {
		t.Fatal(err)
	}
	return &hdrImg{path: p, f: f, g: g}
}

// read returns n bytes at daddr.
func (m *hdrImg) read(t testing.TB, daddr int64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := m.f.ReadAt(b, daddr*ondisk.BBSize); err != nil {
		t.Fatalf("read daddr %d: %v", daddr, err)
	}
	return b
}

func (m *hdrImg) sector(t testing.TB, daddr int64) []byte {
	return m.read(t, daddr, int(m.g.SectSize))
}

func (m *hdrImg) block(t testing.TB, agno, agbno uint32) []byte {
	return m.read(t, m.g.AgbToDaddr(agno, agbno), int(m.g.BlockSize))
}

// hdrNum parses a number as xfs_db prints it: decimal, 0x hex, negative
// decimal (rmap owners, as two's complement), "null" (all ones), with any
// annotation after a space ignored.
func hdrNum(t *testing.T, v string) uint64 {
	t.Helper()
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	if v == "null" {
		return ^uint64(0)
	}
	if strings.HasPrefix(v, "-") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("number %q: %v", v, err)
		}
		return uint64(n)
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		t.Fatalf("number %q: %v", v, err)
	}
	return n
}

// hdrField is one value we decoded, to be compared with xfs_db's line of
// the same name: a number of the given bit width (xfs_db prints "null" for
// all ones), or a string (uuids, names).
type hdrField struct {
	num   uint64
	width int // bits; 0 for a string field
	str   string
}

func hdrU(v uint64, width int) hdrField { return hdrField{num: v, width: width} }

// hdrCRC is how xfs_db prints a CRC: it reads the little-endian field as
// big-endian, so it shows the bytes as stored.
func hdrCRC(crc uint32) hdrField { return hdrU(uint64(bits.ReverseBytes32(crc)), 32) }
func hdrS(s string) hdrField     { return hdrField{str: s} }

func hdrUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// hdrCompare compares every field xfs_db printed with ours: xfs_db must
// print nothing we did not decode (skip lists fields compared elsewhere),
// and everything we decoded must be printed.
func hdrCompare(t *testing.T, what string, out string, ours map[string]hdrField, skip ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range testimg.ParseFieldList(out) {
		if strings.Contains(f.Name, "[") || contains(skip, f.Name) {
			seen[f.Name] = true
			continue
		}
		o, ok := ours[f.Name]
		if !ok {
			t.Errorf("%s: xfs_db prints %s = %s, which we do not decode", what, f.Name, f.Value)
			continue
		}
		seen[f.Name] = true
		if o.width == 0 {
			if f.Value != o.str {
				t.Errorf("%s: %s: xfs_db %q, ours %q", what, f.Name, f.Value, o.str)
			}
			continue
		}
		if f.Value == "" {
			// xfs_db prints nothing for a pointer into a btree the
			// filesystem lacks (rmaproot without rmapbt): it is zero.
			if o.num != 0 {
				t.Errorf("%s: %s: xfs_db prints nothing, ours %#x", what, f.Name, o.num)
			}
			continue
		}
		want := hdrNum(t, f.Value)
		if o.width < 64 {
			want &= 1<<o.width - 1
		}
		if want != o.num {
			t.Errorf("%s: %s: xfs_db %s, ours %#x", what, f.Name, f.Value, o.num)
		}
		if f.Name == "crc" && !strings.Contains(f.Value, "(correct)") {
			t.Errorf("%s: xfs_db says the crc is not correct: %s", what, f.Value)
		}
	}
	for n := range ours {
		if !seen[n] {
			t.Errorf("%s: xfs_db does not print %s", what, n)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// hdrRecord is one entry of an xfs_db array of structures.
type hdrRecord map[string]uint64

var hdrRecordRe = regexp.MustCompile(`(\d+):\[([^\]]*)\]`)

// hdrRecords parses `name[lo-hi] = [f1,f2,...]` and the `i:[v1,v2,...]`
// entries that follow, in one block's output, numbers as hdrNum parses them.
func hdrRecords(t *testing.T, out, name string) []hdrRecord {
	t.Helper()
	lines := strings.Split(out, "\n")
	hre := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\[\d+(?:-\d+)?\] = \[([^\]]*)\](.*)$`)
	var recs []hdrRecord
	for i := 0; i < len(lines); i++ {
		m := hre.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		names := strings.Split(m[1], ",")
		text := m[2]
		for i+1 < len(lines) && !strings.Contains(lines[i+1], " = ") {
			i++
			text += " " + lines[i]
		}
		for _, rm := range hdrRecordRe.FindAllStringSubmatch(text, -1) {
			vals := strings.Split(rm[2], ",")
			if len(vals) != len(names) {
				t.Fatalf("%s record %s: %d values for %d fields", name, rm[1], len(vals), len(names))
			}
			r := hdrRecord{}
			for k, n := range names {
				r[n] = hdrNum(t, vals[k])
			}
			recs = append(recs, r)
		}
	}
	return recs
}

// hdrArray parses `name[lo-hi] = i:v i:v ...` into index → value.
func hdrArray(t *testing.T, out, name string) map[int]uint64 {
	t.Helper()
	ents, ok := testimg.ParseArray(out, name)
	if !ok {
		return nil
	}
	m := map[int]uint64{}
	for _, e := range ents {
		m[e.Index] = hdrNum(t, e.Value)
	}
	return m
}

// hdrCorrupt asserts err is a *CorruptError naming st and field.
func hdrCorrupt(t *testing.T, what string, err error, st, field string) {
	t.Helper()
	ce, ok := err.(*ondisk.CorruptError)
	if !ok {
		t.Errorf("%s: got %v (%T), want a *CorruptError on %s %s", what, err, err, st, field)
		return
	}
	if ce.Struct != st || ce.Field != field {
		t.Errorf("%s: error names %q %q, want %q %q (%v)", what, ce.Struct, ce.Field, st, field, err)
	}
}

package fieldfuzz

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// A Target is one on-disk structure the campaign fuzzes: how xfs_db selects it and which of its
// printed fields are fuzzed.
type Target struct {
	Struct  string   // sb, agi, agf, agfl, inobt, finobt, bnobt, cntbt, rmapbt, inode
	Where   string   // which one: "sb 0", "AG 3", "AG 0 leaf", "ino 786816"
	About   string   // what it is, for an inode: "regular file, data btree, attr extents"
	Select  []string // xfs_db commands that make it the current object: "agf 0", "addr bnoroot"
	Fixture string   // the fixture it is found in: "orphans", "orphans-rmap"
}

// ID names the target in case names: "agi.ag3", "bnobt.ag0.leaf", "inode.786816".
func (g Target) ID() string {
	return g.Struct + "." + strings.ReplaceAll(strings.ToLower(g.Where), " ", "")
}

// keep selects the printed fields of the target that are fuzzed: the core of an inode, all of
// any other structure.
func (g Target) keep() func(string) bool {
	if g.Struct == "inode" {
		return InodeCore
	}
	return nil
}

// btreeRoots says where each AG btree's root and height are: in the AGI or the AGF, by
// xfs_db field name.
var btreeRoots = map[string]struct{ hdr, root, level string }{
	"inobt":  {"agi", "root", "level"},
	"finobt": {"agi", "free_root", "free_level"},
	"bnobt":  {"agf", "bnoroot", "bnolevel"},
	"cntbt":  {"agf", "cntroot", "cntlevel"},
	"rmapbt": {"agf", "rmaproot", "rmaplevel"},
}

// Structs lists every structure name Targets knows, in report order.
var Structs = []string{"sb", "agi", "agf", "agfl", "inobt", "finobt", "bnobt", "cntbt", "rmapbt", "inode"}

// Targets finds the named structures (Structs) in the image of fixture, with xfs_db.
//
// The AG headers and btree roots are those of the last AG: a run meets them after it has
// committed its work in the other AGs, which is where a failure can leave a half-done image. A
// btree that has a single level there is also fuzzed, root and leaf (the first, `addr ptrs[1]`
// down to level 0), in the first AG where it has more. A structure the filesystem does not have
// (finobt without finobt=1, rmapbt without rmapbt=1) has no target.
//
// The inodes are orphans, one of each kind (file type, data fork format, attr fork format): of
// each kind the one in the highest AG, preferring one with a successor on its bucket chain.
func Targets(t testing.TB, img, fixture string, structs []string) []Target {
	t.Helper()
	g := testimg.Geo(t, img)
	last := g.AGCount - 1
	var out []Target
	for _, s := range structs {
		switch s {
		case "sb":
			out = append(out, Target{Struct: s, Where: "sb 0", Select: []string{"sb 0"}})
		case "agi", "agf", "agfl":
			out = append(out, Target{Struct: s, Where: fmt.Sprintf("AG %d", last),
				Select: []string{fmt.Sprintf("%s %d", s, last)}})
		case "inode":
			out = append(out, orphanTargets(t, img, g)...)
		default:
			bt, ok := btreeRoots[s]
			if !ok {
				t.Fatalf("fieldfuzz: unknown structure %q (have %s)", s, strings.Join(Structs, " "))
			}
			out = append(out, btreeTargets(t, img, g, s, bt.hdr, bt.root, bt.level)...)
		}
	}
	for i := range out {
		out[i].Fixture = fixture
	}
	return out
}

// btreeTargets returns the root in the last AG and, if it is the only level there, the root and
// a leaf in the first AG where the tree is taller.
func btreeTargets(t testing.TB, img string, g testimg.Geometry, name, hdr, root, level string) []Target {
	t.Helper()
	levels := make([]uint64, g.AGCount)
	for a := range g.AGCount {
		f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("%s %d", hdr, a), "p"))
		v, ok := f[root]
		if !ok || v == "" || v == "null" {
			return nil // the filesystem has no such tree
		}
		l, err := testimg.ParseUint(f[level])
		if err != nil {
			t.Fatalf("fieldfuzz: %s %d %s = %q: %v", hdr, a, level, f[level], err)
		}
		levels[a] = l
	}
	at := func(a uint32, leaf bool) Target {
		sel := []string{fmt.Sprintf("%s %d", hdr, a), "addr " + root}
		where := fmt.Sprintf("AG %d root", a)
		if leaf {
			for l := levels[a]; l > 1; l-- {
				sel = append(sel, "addr ptrs[1]")
			}
			where = fmt.Sprintf("AG %d leaf", a)
		}
		return Target{Struct: name, Where: where, Select: sel}
	}
	last := g.AGCount - 1
	out := []Target{at(last, false)}
	if levels[last] > 1 {
		return append(out, at(last, true))
	}
	for a := range g.AGCount {
		if levels[a] > 1 {
			return append(out, at(a, false), at(a, true))
		}
	}
	return out
}

// An orphan is an inode on an AGI unlinked list, as xfs_db shows it.
type orphan struct {
	ag   uint32
	ino  uint64
	kind string
	next bool // has a successor on its chain
}

// orphanTargets picks one orphan of each kind (see Targets).
func orphanTargets(t testing.TB, img string, g testimg.Geometry) []Target {
	t.Helper()
	var all []orphan
	for a := range g.AGCount {
		for _, chain := range testimg.OrphanChains(t, img, a) {
			for i, agino := range chain {
				all = append(all, orphan{ag: a, ino: g.Ino(a, agino), next: i+1 < len(chain)})
			}
		}
	}
	if len(all) == 0 {
		t.Fatalf("fieldfuzz: %s has no orphans on its AGI unlinked lists", img)
	}
	var cmds []string
	for _, o := range all {
		cmds = append(cmds, fmt.Sprintf("inode %d", o.ino), "p "+strings.Join(orphanFields, " "))
	}
	fields := testimg.ParseFieldList(testimg.DB(t, img, cmds...))
	n := len(orphanFields)
	if len(fields) != n*len(all) {
		t.Fatalf("fieldfuzz: %d fields for %d orphans", len(fields), len(all))
	}
	best := map[string]orphan{}
	for i := range all {
		o := &all[i]
		f := fields[n*i : n*(i+1)]
		mode, err := testimg.ParseUint(f[0].Value)
		if err != nil {
			t.Fatalf("fieldfuzz: inode %d core.mode = %q", o.ino, f[0].Value)
		}
		o.kind = fmt.Sprintf("%s, data fork %s, attr fork %s", fileType(mode),
			forkFormat(f[1].Value, f[3].Value), forkFormat(f[2].Value, f[4].Value))
		b, ok := best[o.kind]
		if !ok || o.ag > b.ag || o.ag == b.ag && o.next && !b.next {
			best[o.kind] = *o
		}
	}
	var kinds []string
	for k := range best {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var out []Target
	for _, k := range kinds {
		o := best[k]
		about := k
		if o.next {
			about += ", not last on its bucket chain"
		}
		out = append(out, Target{Struct: "inode", Where: "ino " + strconv.FormatUint(o.ino, 10),
			About: about, Select: []string{fmt.Sprintf("inode %d", o.ino)}})
	}
	return out
}

// fileType names the file type bits of a mode.
func fileType(mode uint64) string {
	switch mode & 0o170000 {
	case 0o100000:
		return "regular file"
	case 0o040000:
		return "directory"
	case 0o120000:
		return "symlink"
	case 0o010000:
		return "fifo"
	case 0o020000:
		return "char device"
	case 0o060000:
		return "block device"
	case 0o140000:
		return "socket"
	}
	return fmt.Sprintf("mode %#o", mode)
}

// orphanFields are what orphanTargets reads of each orphan to tell its kind.
var orphanFields = []string{"core.mode", "core.format", "core.aformat", "core.nextents", "core.naextents"}

// forkFormat turns xfs_db's format "2 (extents)" and extent count into "extents" or
// "extents, empty".
func forkFormat(format, extents string) string {
	if i := strings.IndexByte(format, '('); i >= 0 {
		format = strings.TrimSuffix(format[i+1:], ")")
	}
	if format == "extents" && extents == "0" {
		format += ", empty"
	}
	return format
}

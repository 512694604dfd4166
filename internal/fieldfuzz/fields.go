package fieldfuzz

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Verbs are xfs_db's fuzz verbs, in the order xfs_db lists them (`fuzz` with no arguments).
var Verbs = []string{"zeroes", "ones", "firstbit", "middlebit", "lastbit", "add", "sub", "random"}

// ArrayHead is how many elements of an array are fuzzed from its first index, as xfstests'
// fuzz groups do (SCRATCH_XFS_MAX_ARRAY_IDX defaults to 9: indices 0-9). FieldNames adds the
// last index and the first ArrayHead elements that are not null (AGI buckets in use, AGFL
// slots holding a block), which the first ten can miss.
const ArrayHead = 10

// A Skip is a printed field that is not fuzzed, and why.
type Skip struct {
	Field, Why string
}

// skipRules say which printed fields fuzz cannot change. Checked in order on the name.
var skipRules = []struct {
	match func(name string) bool
	why   string
}{
	{func(n string) bool { return n == "crc" || strings.HasSuffix(n, ".crc") },
		"fuzz -d recomputes the CRC after the change, so no verb can change it"},
	{func(n string) bool { return strings.Contains(n, "pad") },
		"padding: not a field of the structure (xfstests skips it too)"},
}

// arrayName matches a printed array: `unlinked[0-63]`, `recs[1-502]`, `u3.bmx[0]`.
var arrayName = regexp.MustCompile(`^([A-Za-z0-9_.]*)\[(\d+)(?:-(\d+))?\](.*)$`)

// arrayEntry matches one `i:v` of a printed array of scalars.
var arrayEntry = regexp.MustCompile(`(\d+):(\S+)`)

// FieldNames turns xfs_db `print` output into the names `fuzz` takes, in printed order, and lists
// what it leaves out. A scalar is its own name; an array of scalars (`unlinked[0-63] = 14:142 ...`,
// `ptrs[1-17] = 1:5 ...`, `bno[0-118] = 0:null 1:6 ...`) gives `name[i]`; an array of structures
// (`recs[1-502] = [startblock,blockcount]`) gives `name[i].sub` for each member. The indices are
// those ArrayHead describes. keep, if not nil, selects the names to fuzz by their printed name
// (an inode's core: `core.`, `next_unlinked`, `v3.`).
func FieldNames(out string, keep func(name string) bool) (names []string, skipped []Skip) {
	seen := map[string]bool{}
	add := func(n string) {
		for _, r := range skipRules {
			if r.match(n) {
				skipped = append(skipped, Skip{n, r.why})
				return
			}
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(line, " = ")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue // an array of structures' records, or not a field
		}
		if keep != nil && !keep(name) {
			continue
		}
		value = strings.TrimSpace(value)
		if value == "(empty)" {
			skipped = append(skipped, Skip{name, "an empty fork: nothing to fuzz"})
			continue
		}
		m := arrayName.FindStringSubmatch(name)
		if m == nil {
			add(name)
			continue
		}
		base, rest := m[1], m[4]
		lo, _ := strconv.Atoi(m[2])
		hi := lo
		if m[3] != "" {
			hi, _ = strconv.Atoi(m[3])
		}
		var nonNull []int
		var subs []string
		if strings.HasPrefix(value, "[") {
			end := strings.IndexByte(value, ']')
			if end < 0 {
				continue
			}
			subs = strings.Split(value[1:end], ",")
		} else {
			for _, e := range arrayEntry.FindAllStringSubmatch(value, -1) {
				if e[2] != "null" {
					i, _ := strconv.Atoi(e[1])
					nonNull = append(nonNull, i)
				}
			}
		}
		for _, i := range arrayIndices(lo, hi, nonNull) {
			elem := base + "[" + strconv.Itoa(i) + "]" + rest
			if subs == nil {
				add(elem)
				continue
			}
			for _, s := range subs {
				add(elem + "." + s)
			}
		}
	}
	return names, skipped
}

// arrayIndices returns, in order, the indices of an array lo..hi that are fuzzed: the first
// ArrayHead, the last, and the first ArrayHead of nonNull.
func arrayIndices(lo, hi int, nonNull []int) []int {
	var idx []int
	for i := lo; i <= hi && i < lo+ArrayHead; i++ {
		idx = append(idx, i)
	}
	idx = append(idx, hi)
	for k, i := range nonNull {
		if k == ArrayHead {
			break
		}
		if i >= lo && i <= hi {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	return slices.Compact(idx)
}

// InodeCore selects the fields of an inode's core for FieldNames: `core.*`, `next_unlinked`
// and the v3 fields (`v3.*`), not the forks (`u3`, `a`).
func InodeCore(name string) bool {
	return strings.HasPrefix(name, "core.") || name == "next_unlinked" || strings.HasPrefix(name, "v3.")
}

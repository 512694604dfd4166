package fieldfuzz

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Output of xfs_db 6.1 `print` on an AGI, a bnobt leaf, an AGFL and an inode (shortened).
const (
	agiOut = `magicnum = 0x58414749
level = 1
unlinked[0-63] = 14:142 15:143 16:144 17:145 18:146 19:147 20:148 21:149 22:150 23:151 30:160 31:161
uuid = 1026cd9e-0911-40ea-8173-34948492abdb
crc = 0x1862d8d3 (correct)
`
	leafOut = `magic = 0x41423342
numrecs = 3
crc = 0x8a579b1c (correct)
recs[1-3] = [startblock,blockcount] 
1:[10,5] 
2:[24,8] 
3:[56,19144]
`
	oneRecOut = `recs[1] = [startino,holemask,count,freecount,free] 
1:[384,0,64,14,0xfffc000000000000]
`
	agflOut = `magicnum = 0x5841464c
bno[0-118] = 0:null 1:6 2:7 3:null 4:null 5:null 6:null 7:null 8:null 9:null 10:null 11:null 12:null 13:null 14:null 15:null 16:null 17:null 18:null 19:null 20:null 21:null 22:null 23:null 24:null 25:null 26:40 27:41 118:null
`
	inodeOut = `core.magic = 0x494e
core.atime.sec = Wed Nov 25 12:53:32 2026
next_unlinked = 320
v3.crc = 0xb4b8a558 (correct)
v3.inumber = 786816
u3.bmx[0] = [startoff,startblock,blockcount,extentflag] 0:[0,12,1,0]
u3 = (empty)
a = (empty)
`
)

func TestFieldNames(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		keep      func(string) bool
		want      []string
		skipped   []string
	}{
		{"agi", agiOut, nil, []string{"magicnum", "level",
			"unlinked[0]", "unlinked[1]", "unlinked[2]", "unlinked[3]", "unlinked[4]", "unlinked[5]",
			"unlinked[6]", "unlinked[7]", "unlinked[8]", "unlinked[9]",
			"unlinked[14]", "unlinked[15]", "unlinked[16]", "unlinked[17]", "unlinked[18]", "unlinked[19]",
			"unlinked[20]", "unlinked[21]", "unlinked[22]", "unlinked[23]", "unlinked[63]", "uuid"},
			[]string{"crc"}},
		{"leaf", leafOut, nil, []string{"magic", "numrecs",
			"recs[1].startblock", "recs[1].blockcount", "recs[2].startblock", "recs[2].blockcount",
			"recs[3].startblock", "recs[3].blockcount"}, []string{"crc"}},
		{"one record", oneRecOut, nil, []string{"recs[1].startino", "recs[1].holemask",
			"recs[1].count", "recs[1].freecount", "recs[1].free"}, nil},
		{"agfl", agflOut, nil, []string{"magicnum", "bno[0]", "bno[1]", "bno[2]", "bno[3]", "bno[4]",
			"bno[5]", "bno[6]", "bno[7]", "bno[8]", "bno[9]", "bno[26]", "bno[27]", "bno[118]"}, nil},
		{"inode core", inodeOut, InodeCore, []string{"core.magic", "core.atime.sec", "next_unlinked",
			"v3.inumber"}, []string{"v3.crc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped := FieldNames(tc.out, tc.keep)
			if !slices.Equal(got, tc.want) {
				t.Errorf("names\n got %s\nwant %s", strings.Join(got, " "), strings.Join(tc.want, " "))
			}
			var sk []string
			for _, s := range skipped {
				sk = append(sk, s.Field)
			}
			if !slices.Equal(sk, tc.skipped) {
				t.Errorf("skipped %v, want %v", sk, tc.skipped)
			}
		})
	}
}

func TestArrayIndices(t *testing.T) {
	for _, tc := range []struct {
		lo, hi  int
		nonNull []int
		want    []int
	}{
		{1, 1, nil, []int{1}},
		{1, 4, []int{1, 2, 3, 4}, []int{1, 2, 3, 4}},
		{0, 63, nil, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 63}},
		{1, 502, nil, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 502}},
		{0, 63, []int{40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
			40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 63}},
	} {
		if got := arrayIndices(tc.lo, tc.hi, tc.nonNull); !slices.Equal(got, tc.want) {
			t.Errorf("arrayIndices(%d, %d, %v) = %v, want %v", tc.lo, tc.hi, tc.nonNull, got, tc.want)
		}
	}
}

func TestParseFuzz(t *testing.T) {
	for _, tc := range []struct {
		out, field string
		want       Fuzzed
	}{
		{"level = 1\nAllowing fuzz of corrupted data with good CRC\nlevel = 2018\n", "level",
			Fuzzed{Old: "1", New: "2018"}},
		{"unlinked[5] = \nAllowing fuzz of corrupted data with good CRC\nunlinked[5] = 0\n", "unlinked[5]",
			Fuzzed{Old: "", New: "0"}},
		{"count = 0\nAllowing fuzz of corrupted data with good CRC\ncount = 0\n", "count",
			Fuzzed{Old: "0", New: "0", NA: NAUnchanged}},
		{"uuid = 1026cd9e\nAllowing fuzz of corrupted data with good CRC\nunable to fuzz field 'uuid'\n", "uuid",
			Fuzzed{NA: NARefused}},
		{"field keys not found\nparsing error\n", "keys[1]", Fuzzed{NA: NADBError + ": field keys not found"}},
	} {
		if got := parseFuzz(tc.out, tc.field); got != tc.want {
			t.Errorf("parseFuzz(%q) = %+v, want %+v", tc.out, got, tc.want)
		}
	}
}

func TestSample(t *testing.T) {
	var cases []Case
	for i := range 200 {
		st := "sb"
		if i%10 < 2 {
			st = "agi" // two small groups: 20 cases each of 200
		}
		cases = append(cases, Case{Image: Images[i%2], Target: Target{Struct: st},
			Field: "f" + strconv.Itoa(i), Verb: Verbs[i%len(Verbs)]})
	}
	a, b := Sample(cases, 20, 7), Sample(cases, 20, 7)
	if len(a) != 20 || !slices.EqualFunc(a, b, func(x, y Case) bool { return x.Name() == y.Name() }) {
		t.Fatalf("Sample is not a reproducible draw of 20: %v / %v", a, b)
	}
	per := map[string]int{}
	for _, c := range a {
		per[c.Target.Struct+" "+c.Image]++
	}
	for k, n := range per {
		if n != 5 {
			t.Errorf("Sample drew %d cases of %s, want 5 of each of the 4 groups: %v", n, k, per)
		}
	}
	if c := Sample(cases, 20, 8); slices.EqualFunc(a, c, func(x, y Case) bool { return x.Name() == y.Name() }) {
		t.Error("seeds 7 and 8 drew the same cases")
	}
	if got := Sample(cases, 0, 7); len(got) != 200 {
		t.Errorf("Sample(..., 0) = %d cases, want all 200", len(got))
	}
}

func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	a, b := dir+"/a", dir+"/b"
	write := func(path string, size int64, at int64, data []byte) {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data, at); err != nil {
			t.Fatal(err)
		}
	}
	fp := func(path string) uint64 {
		h, err := fingerprint(path)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	write(a, 1<<20, 0, nil)
	write(b, 1<<20, 300<<10, make([]byte, 8192)) // zeros written over a hole: the same bytes
	if fp(a) != fp(b) {
		t.Error("zeros written over a hole changed the fingerprint")
	}
	write(b, 1<<20, 300<<10, []byte{1})
	if fp(a) == fp(b) {
		t.Error("a changed byte left the fingerprint as it was")
	}
	write(b, 2<<20, 0, nil)
	if fp(a) == fp(b) {
		t.Error("a changed size left the fingerprint as it was")
	}
}

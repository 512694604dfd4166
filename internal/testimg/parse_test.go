package testimg

import (
	"reflect"
	"testing"
)

// The outputs below are verbatim xfs_db 6.1 output from the fixtures (trailing spaces included).

func TestParseFields(t *testing.T) {
	out := "magicnum = 0x58414749\nversionnum = 1\nseqno = 0\ndirino = null\n" +
		"unlinked[0-63] = \ncrc = 0x1dd8a076 (correct)\ncore.format = 3 (btree)\n" +
		"recs[1-2] = [startino,freecount,free] \n1:[96,0,0] \n2:[160,0,0]\n"
	f := ParseFields(out)
	want := map[string]string{
		"magicnum": "0x58414749", "versionnum": "1", "seqno": "0", "dirino": "null",
		"unlinked[0-63]": "", "crc": "0x1dd8a076 (correct)", "core.format": "3 (btree)",
		"recs[1-2]": "[startino,freecount,free]",
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("ParseFields = %v, want %v", f, want)
	}
	for v, want := range map[string]uint64{
		"0x58414749": 0x58414749, "null": ^uint64(0), "3 (btree)": 3, "0100644": 0o100644,
		"0x1dd8a076 (correct)": 0x1dd8a076, "0xffffffffffffc000": 0xffffffffffffc000,
	} {
		if got, err := ParseUint(v); err != nil || got != want {
			t.Errorf("ParseUint(%q) = %#x, %v; want %#x", v, got, err, want)
		}
	}
}

func TestParseUnlinked(t *testing.T) {
	b, err := ParseUnlinked("unlinked[0-63] = \n")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range b {
		if v != NullAgino {
			t.Errorf("empty: bucket %d = %d", i, v)
		}
	}
	b, err = ParseUnlinked("count = 64\nunlinked[0-63] = 14:142 15:143 63:575 \nuuid = x\n")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range b {
		want := uint32(NullAgino)
		switch i {
		case 14:
			want = 142
		case 15:
			want = 143
		case 63:
			want = 575
		}
		if v != want {
			t.Errorf("bucket %d = %d, want %d", i, v, want)
		}
	}
	if _, err := ParseUnlinked("count = 64\n"); err == nil {
		t.Error("no unlinked line: no error")
	}
}

func TestParseArrayPtrs(t *testing.T) {
	out := "keys[1-2] = [startino] \n1:[131136] \n2:[386240]\nptrs[1-2] = 1:66260 2:117469\n" +
		"ptrs[1-3] = 1:4 2:65547 3:66261\n"
	got, ok := ParseArray(out, "ptrs")
	want := []ArrayEntry{{1, "66260"}, {2, "117469"}, {1, "4"}, {2, "65547"}, {3, "66261"}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseArray = %v %v, want %v", got, ok, want)
	}
	keys, err := ParseRecords(out, "keys")
	if err != nil || !reflect.DeepEqual(keys, []Record{{"startino": 131136}, {"startino": 386240}}) {
		t.Errorf("keys = %v, %v", keys, err)
	}
}

func TestParseRecords(t *testing.T) {
	sparse := "crc = 0x6a0bc993 (correct)\nrecs[1-2] = [startino,holemask,count,freecount,free] \n" +
		"1:[131136,0,64,0,0] \n2:[128,0,64,50,0xffffffffffffc000]\n"
	recs, err := ParseRecords(sparse, "recs")
	want := []Record{
		{"startino": 131136, "holemask": 0, "count": 64, "freecount": 0, "free": 0},
		{"startino": 128, "holemask": 0, "count": 64, "freecount": 50, "free": 0xffffffffffffc000},
	}
	if err != nil || !reflect.DeepEqual(recs, want) {
		t.Errorf("sparse recs = %v, %v; want %v", recs, err, want)
	}
	// Without sparse inodes; two blocks in one run; a single-record header.
	plain := "recs[1-2] = [startino,freecount,free] \n1:[96,0,0] \n2:[160,0,0]\n" +
		"magic = 0x49414233\nrecs[1] = [startino,freecount,free] \n1:[544,46,0xfffffffffffc0000]\n"
	recs, err = ParseRecords(plain, "recs")
	want = []Record{
		{"startino": 96, "freecount": 0, "free": 0},
		{"startino": 160, "freecount": 0, "free": 0},
		{"startino": 544, "freecount": 46, "free": 0xfffffffffffc0000},
	}
	if err != nil || !reflect.DeepEqual(recs, want) {
		t.Errorf("plain recs = %v, %v; want %v", recs, err, want)
	}
	// An inode's extent list, with the next field after it.
	bmx := "u3.bmx[0-1] = [startoff,startblock,blockcount,extentflag] \n0:[0,23,1,0] \n1:[2,25,1,0]\n" +
		"a.sfattr.hdr.totsize = 33\n"
	recs, err = ParseRecords(bmx, "u3.bmx")
	want = []Record{
		{"startoff": 0, "startblock": 23, "blockcount": 1, "extentflag": 0},
		{"startoff": 2, "startblock": 25, "blockcount": 1, "extentflag": 0},
	}
	if err != nil || !reflect.DeepEqual(recs, want) {
		t.Errorf("bmx recs = %v, %v; want %v", recs, err, want)
	}
	if _, err := ParseRecords("recs[1] = [a,b] \n1:[1]\n", "recs"); err == nil {
		t.Error("short record: no error")
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b`); got != "/tmp/a b" {
		t.Errorf("unescapeMount = %q", got)
	}
}

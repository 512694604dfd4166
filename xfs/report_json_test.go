package xfs

import (
	"encoding/json"
	"testing"
)

// The hand-written JSON of freed inodes is what encoding/json wrote.
func TestFreedInodesJSONSame(t *testing.T) {
	l := FreedInodes{{Ino: 132, AG: 1, Mode: 0100644, Size: 5, Blocks: 7, ChunkFreed: true}, {Ino: 1 << 40, Mode: 040755}, {Mode: 0}}
	got, _ := json.Marshal(l)
	type plain FreedInode
	var want []byte
	want = append(want, '[')
	for i, in := range l {
		if i > 0 {
			want = append(want, ',')
		}
		b, _ := json.Marshal(struct {
			plain
			Type string `json:"type"`
		}{plain(in), in.Mode.Type()})
		want = append(want, b...)
	}
	want = append(want, ']')
	if string(got) != string(want) {
		t.Fatalf("\n%s\n%s", got, want)
	}
}

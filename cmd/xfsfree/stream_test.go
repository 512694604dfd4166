package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/xfs"
)

// A document with a streamed list holds what encoding/json writes, indented
// as json.Indent indents (the streamed list comes last in its object).
func TestStreamedDocumentLikeMarshalled(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		// A string that looks like a placeholder is left as it is.
		rep := &xfs.FreeReport{Device: "\x00list-0-0000000000000000", Chunks: []xfs.FreedChunk{{AG: 1, Inodes: 64}}}
		for i := range n {
			rep.Inodes = append(rep.Inodes, xfs.FreedInode{Ino: uint64(100 + i), AG: 2, Mode: 0100644, Size: 7, Blocks: 1, ChunkFreed: i == 1})
		}
		var got, want bytes.Buffer
		if err := writeDocument(&got, "free", &freeOutput{FreeReport: rep, Inodes: freedInodes(rep.Inodes)}, nil, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := writeDocument(&want, "free", &struct{ *xfs.FreeReport }{rep}, nil, time.Second); err != nil {
			t.Fatal(err)
		}
		sameDocument(t, got.Bytes(), want.Bytes())
		clean := &xfs.CleanReport{Device: "img", Free: rep}
		got.Reset()
		want.Reset()
		if err := writeDocument(&got, "clean", newCleanOutput(clean, nil, nil), nil, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := writeDocument(&want, "clean", &struct{ *xfs.CleanReport }{clean}, nil, time.Second); err != nil {
			t.Fatal(err)
		}
		sameDocument(t, got.Bytes(), want.Bytes())
	}
}

func sameDocument(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("streamed document: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	if !bytes.Equal(gj, wj) {
		t.Errorf("streamed\n%s\nmarshalled\n%s", got, want)
	}
	var re bytes.Buffer
	json.Indent(&re, bytes.TrimSpace(got), "", "  ")
	if re.String() != string(bytes.TrimSpace(got)) {
		t.Errorf("streamed document not indented as json.Indent:\n%s", got)
	}
}

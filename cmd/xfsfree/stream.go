package main

// Lists of a --json document too long to build in memory: the inodes a
// run freed (a million for a million orphans, 180 MB of JSON). Such a list
// is marshalled as a placeholder string, and writeDocument writes its
// elements in its place, one at a time, straight to the output, each
// indented by json.Indent.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"

	"github.com/xfsfree/xfsfree/xfs"
)

// streamList is a list written element by element.
type streamList struct {
	n    int
	elem func(dst []byte, i int) []byte // appends element i's compact JSON
	tag  string                         // its placeholder's name, set by writeDocument (fillLists)
}

var streamListType = reflect.TypeFor[*streamList]()

// placeholder is the JSON string the list marshals to: a NUL and a name
// that no string read from the device holds by chance (setTag).
func (s *streamList) placeholder() []byte { return []byte(`"\u0000` + s.tag + `"`) }

// setTag names the list: its number in the document and a random word.
func (s *streamList) setTag(id int) { s.tag = fmt.Sprintf("list-%d-%016x", id, rand.Uint64()) }

func (s *streamList) MarshalJSON() ([]byte, error) { return s.placeholder(), nil }

// freedInodes streams a run's freed inodes.
func freedInodes(l xfs.FreedInodes) *streamList {
	return &streamList{n: len(l), elem: func(dst []byte, i int) []byte { return l[i].AppendJSON(dst) }}
}

// writeStreamed writes the indented document doc, each list's
// placeholder replaced by the list.
func writeStreamed(w io.Writer, doc []byte, lists []*streamList) error {
	type at struct {
		i int
		l *streamList
	}
	var places []at
	for _, l := range lists {
		if i := bytes.Index(doc, l.placeholder()); i >= 0 {
			places = append(places, at{i, l})
		}
	}
	slices.SortFunc(places, func(a, b at) int { return a.i - b.i })
	bw := bufio.NewWriterSize(w, 1<<16)
	done := 0 // doc[:done] is written
	for _, p := range places {
		line := doc[bytes.LastIndexByte(doc[:p.i], '\n')+1 : p.i]
		prefix := strings.Repeat(" ", len(line)-len(bytes.TrimLeft(line, " ")))
		bw.Write(doc[done:p.i])
		if err := writeList(bw, p.l, prefix); err != nil {
			return err
		}
		done = p.i + len(p.l.placeholder())
	}
	bw.Write(doc[done:])
	return bw.Flush()
}

// writeList writes l as json.Indent writes an array whose line starts
// with prefix, indenting by two spaces, indenting one element at a time.
func writeList(bw *bufio.Writer, l *streamList, prefix string) error {
	if l.n == 0 {
		bw.WriteString("[]")
		return nil
	}
	inner := prefix + "  "
	var compact []byte
	var elem bytes.Buffer
	bw.WriteByte('[')
	for i := range l.n {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		bw.WriteString(inner)
		compact = l.elem(compact[:0], i)
		elem.Reset()
		if err := json.Indent(&elem, compact, inner, "  "); err != nil {
			return fmt.Errorf("--json: list element %d: %w", i, err)
		}
		bw.Write(elem.Bytes())
	}
	bw.WriteByte('\n')
	bw.WriteString(prefix)
	bw.WriteByte(']')
	return nil
}

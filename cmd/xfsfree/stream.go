package main

// Lists of a --json document too long to build in memory: the inodes a
// run freed (a million for a million orphans, 180 MB of JSON). Such a list
// is marshalled as a placeholder string, and writeDocument writes its
// elements in its place, one at a time, straight to the output, indented
// as json.Indent would have.

import (
	"bufio"
	"bytes"
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
		writeList(bw, p.l, prefix)
		done = p.i + len(p.l.placeholder())
	}
	bw.Write(doc[done:])
	return bw.Flush()
}

// writeList writes l as json.Indent writes an array whose line starts
// with prefix, indenting by two spaces.
func writeList(bw *bufio.Writer, l *streamList, prefix string) {
	if l.n == 0 {
		bw.WriteString("[]")
		return
	}
	inner := prefix + "  "
	var compact, out []byte
	bw.WriteByte('[')
	for i := range l.n {
		out = out[:0]
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '\n')
		out = append(out, inner...)
		compact = l.elem(compact[:0], i)
		out = appendIndent(out, compact, inner, "  ")
		bw.Write(out)
	}
	bw.WriteByte('\n')
	bw.WriteString(prefix)
	bw.WriteByte(']')
}

// appendIndent appends src, compact JSON, indented as json.Indent(dst,
// src, prefix, indent) would write it.
func appendIndent(dst, src []byte, prefix, indent string) []byte {
	depth := 0
	inString, escaped, opened := false, false, false
	newline := func() {
		dst = append(dst, '\n')
		dst = append(dst, prefix...)
		for range depth {
			dst = append(dst, indent...)
		}
	}
	for _, c := range src {
		if inString {
			dst = append(dst, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if opened {
			opened = false
			if c == '}' || c == ']' { // an empty object or array
				dst = append(dst, c)
				continue
			}
			depth++
			newline()
		}
		switch c {
		case '"':
			inString = true
			dst = append(dst, c)
		case '{', '[':
			dst = append(dst, c)
			opened = true
		case ',':
			dst = append(dst, c)
			newline()
		case ':':
			dst = append(dst, ':', ' ')
		case '}', ']':
			depth--
			newline()
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

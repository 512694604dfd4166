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
	"reflect"
	"strconv"
	"strings"

	"github.com/xfsfree/xfsfree/xfs"
)

// streamList is a list written element by element.
type streamList struct {
	n    int
	elem func(dst []byte, i int) []byte // appends element i's compact JSON
	id   int                            // its placeholder's number, set by writeDocument
}

var streamListType = reflect.TypeFor[*streamList]()

// streamPlaceholder starts the JSON string a streamList marshals to (a
// NUL cannot appear in any other string of a document).
const streamPlaceholder = `"\u0000list`

func (s *streamList) MarshalJSON() ([]byte, error) {
	return []byte(streamPlaceholder + strconv.Itoa(s.id) + `"`), nil
}

// freedInodes streams a run's freed inodes.
func freedInodes(l xfs.FreedInodes) *streamList {
	return &streamList{n: len(l), elem: func(dst []byte, i int) []byte { return l[i].AppendJSON(dst) }}
}

// writeStreamed writes the indented document doc, each placeholder
// replaced by its list.
func writeStreamed(w io.Writer, doc []byte, lists []*streamList) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	for {
		i := bytes.Index(doc, []byte(streamPlaceholder))
		if i < 0 {
			break
		}
		j := bytes.IndexByte(doc[i+1:], '"')
		if j < 0 {
			return fmt.Errorf("--json: unterminated list placeholder")
		}
		j += i + 1
		id, err := strconv.Atoi(string(doc[i+len(streamPlaceholder) : j]))
		if err != nil || id < 0 || id >= len(lists) {
			return fmt.Errorf("--json: bad list placeholder %q", doc[i:j+1])
		}
		line := doc[bytes.LastIndexByte(doc[:i], '\n')+1 : i]
		prefix := strings.Repeat(" ", len(line)-len(bytes.TrimLeft(line, " ")))
		bw.Write(doc[:i])
		writeList(bw, lists[id], prefix)
		doc = doc[j+1:]
	}
	bw.Write(doc)
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

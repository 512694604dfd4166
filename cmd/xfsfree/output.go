package main

// The --json document: every run under --json prints exactly one JSON
// object on stdout, success or failure (usage errors and refusals
// included), in the form docs/xfsfree.schema.json documents:
//
//	{"schema_version": 1, "command": "scan", <the command's report>,
//	 "elapsed_seconds": 0.42, "error": {"message": ..., "ag": ..., ...}}
//
// "error" is there exactly when the exit status is not 0; the report's
// members are there when the command got as far as a report. Lists are
// never null. Commands hand their report to globalFlags.setReport; run
// writes the document once the command has returned.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/xfs"
)

// schemaVersion is the version of the JSON documents' form. It changes
// when a member changes meaning or form or goes away; new members do not
// change it.
const schemaVersion = 1

// setReport makes rep the report of the --json document (a struct or a
// pointer to one, marshalling to a JSON object).
func (g *globalFlags) setReport(rep any) { g.report = rep }

// elapsed is the time since the run started.
func (g *globalFlags) elapsed() time.Duration { return time.Since(g.start) }

// located is an error whose --json form carries a place (the first of
// the problems it sums up): check's problems, scan's failed AGs, free's
// refusals and failures.
type located struct {
	msg   string
	where xfs.Problem
}

func (e *located) Error() string { return e.msg }

// errorProblem is err in the one JSON form of an error: its message, and
// the place of an *ondisk.CorruptError or a located error inside it (or
// the first inode an *xfs.InoRefusedError refuses).
func errorProblem(err error) xfs.Problem {
	p := xfs.ProblemOf(xfs.NoAG, -1, 0, err)
	var l *located
	if errors.As(err, &l) {
		p.AG, p.Daddr, p.Struct, p.Field, p.Ino = l.where.AG, l.where.Daddr, l.where.Struct, l.where.Field, l.where.Ino
	}
	var ir *xfs.InoRefusedError
	if errors.As(err, &ir) && len(ir.Refused) > 0 {
		p.Ino = ir.Refused[0].Ino
	}
	return p
}

// commandName is the name a document gives cmd: its path without the
// program's name ("scan", "debug set-label"), or "xfsfree" for the root
// (no command, or an unknown one).
func commandName(cmd *cobra.Command) string {
	if cmd == nil || !cmd.HasParent() {
		return "xfsfree"
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// wantsJSON reports whether args ask for --json, for the runs that fail
// before cobra has set the flag (an unknown flag after it, an unknown
// command). Arguments after "--" are operands.
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "--json=true", "--json=1":
			return true
		}
	}
	return false
}

// writeDocument writes the --json document of a run of command.
func writeDocument(w io.Writer, command string, report any, runErr error, elapsed time.Duration) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"schema_version":%d,"command":%q`, schemaVersion, command)
	var lists []*streamList
	if report != nil {
		fillLists(reflect.ValueOf(report), &lists)
		body, err := json.Marshal(report)
		if err != nil {
			return fmt.Errorf("--json: %w", err)
		}
		body = bytes.TrimSpace(body)
		if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
			return fmt.Errorf("--json: the %s report is not a JSON object", command)
		}
		if inner := bytes.TrimSpace(body[1 : len(body)-1]); len(inner) > 0 {
			b.WriteByte(',')
			b.Write(inner)
		}
	}
	fmt.Fprintf(&b, `,"elapsed_seconds":%.3f`, elapsed.Seconds())
	if runErr != nil {
		e, err := json.Marshal(errorProblem(runErr))
		if err != nil {
			return err
		}
		b.WriteString(`,"error":`)
		b.Write(e)
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	out.WriteByte('\n')
	return writeStreamed(w, out.Bytes(), lists) // stream.go
}

// fillLists makes every nil slice reachable from v through exported
// struct fields, pointers and slices an empty one, so that JSON has []
// and never null for a list ([]byte, base64 in JSON, is left alone), and
// numbers the streamed lists it meets, appending them to lists.
func fillLists(v reflect.Value, lists *[]*streamList) {
	if v.Type() == streamListType {
		if !v.IsNil() {
			l := v.Interface().(*streamList)
			l.setTag(len(*lists))
			*lists = append(*lists, l)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			fillLists(v.Elem(), lists)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			fv := v.Field(i)
			if fv.Kind() == reflect.Slice && fv.IsNil() && fv.CanSet() && fv.Type().Elem().Kind() != reflect.Uint8 {
				fv.Set(reflect.MakeSlice(fv.Type(), 0, 0))
			}
			fillLists(fv, lists)
		}
	case reflect.Slice, reflect.Array:
		if !mayHoldLists(v.Type().Elem()) {
			return // a million freed inodes: nothing to fill in any
		}
		for i := range v.Len() {
			fillLists(v.Index(i), lists)
		}
	}
}

// mayHoldLists reports whether a value of type t can hold a slice that
// fillLists fills.
func mayHoldLists(t reflect.Type) bool {
	if t == streamListType {
		return true
	}
	if v, ok := holdsLists.Load(t); ok {
		return v.(bool)
	}
	holdsLists.Store(t, true) // a recursive type: assume it may
	r := false
	switch t.Kind() {
	case reflect.Pointer, reflect.Array:
		r = mayHoldLists(t.Elem())
	case reflect.Interface, reflect.Slice:
		r = true
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); (f.IsExported() || f.Anonymous) && mayHoldLists(f.Type) {
				r = true
				break
			}
		}
	}
	holdsLists.Store(t, r)
	return r
}

var holdsLists sync.Map // reflect.Type -> bool

// fmtElapsed is how text summaries end: "elapsed 0.42s", "elapsed 3m2s".
func fmtElapsed(d time.Duration) string {
	switch {
	case d < time.Second:
		return "elapsed " + d.Round(time.Millisecond).String()
	case d < time.Minute:
		return "elapsed " + d.Round(10*time.Millisecond).String()
	}
	return "elapsed " + d.Round(time.Second).String()
}

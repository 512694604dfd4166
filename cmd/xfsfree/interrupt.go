package main

// Interrupts (SIGINT, SIGTERM) of the writing commands: the first asks the
// run to stop at the next transaction boundary and end cleanly (the log
// then is clean); a second stops at once, leaving a dirty log that xfsfree
// recover or a kernel mount replays.

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitDocument, when set (--json), writes the run's JSON document with
// err before an exit that does not return through run: a second interrupt.
var exitDocument func(err error)

// interruptedError ends a run stopped by an interrupt: exit 130.
type interruptedError struct{ msg string }

func (e interruptedError) Error() string { return e.msg }

// catchInterrupts starts watching for SIGINT and SIGTERM. The returned
// channel is closed at the first, which prints first; the second prints
// atOnce and exits 130 at once. done stops watching.
func catchInterrupts(first, atOnce string) (stop <-chan struct{}, done func()) {
	ch := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-quit:
				return
			case s := <-sigs:
				n++
				if n == 1 {
					fmt.Fprintf(os.Stderr, "\nxfsfree: %v: %s (interrupt again to stop at once)\n", s, first)
					close(ch)
					continue
				}
				msg := fmt.Sprintf("%v again: stopped at once: %s", s, atOnce)
				fmt.Fprintf(os.Stderr, "xfsfree: %s\n", msg)
				if exitDocument != nil {
					exitDocument(interruptedError{msg})
				}
				os.Exit(exitInterrupted)
			}
		}
	}()
	return ch, func() {
		signal.Stop(sigs)
		close(quit)
	}
}

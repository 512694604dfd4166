package main

// The safety reproductions of issue 7, through the CLI on real images and
// real loop devices: no write to a mounted filesystem by any path, one
// writer per filesystem, interrupts that end cleanly.

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// recovered returns a private copy of the orphans fixture after `xfsfree
// recover`: a clean log, 313 orphans on the unlinked lists.
func recovered(t *testing.T) string {
	t.Helper()
	img := testimg.Path(t, "orphans")
	if r := runCLI(t, "recover", img); r.code != 0 {
		t.Fatalf("recover: exit %d: %s", r.code, r.stderr)
	}
	return img
}

// A second loop device over a mounted image is the mounted filesystem:
// every command refuses it and nothing is written (the label a write
// would change is unchanged, and xfs_repair -n is clean after umount).
func TestSecondLoopOfMountedRefused(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "default")
	label := cliLabel(t, img)
	mnt := testimg.Mount(t, img)
	lb := testimg.Losetup(t, img)
	for _, args := range [][]string{{"free", "--orphans", lb}, {"recover", lb}, {"debug", "set-label", lb, "x"},
		{"scan", lb}, {"free", "--orphans", img}, {"debug", "set-label", img, "x"}} {
		r := runCLI(t, args...)
		expectFailure(t, r, exitFailed, "mounted", mnt)
	}
	testimg.Unmount(t, mnt)
	testimg.Repair(t, img)
	if l := cliLabel(t, img); l != label {
		t.Errorf("label %q after the refusals, was %q", l, label)
	}
}

// startSlowFree starts `free --orphans` on dev, slowed down per item, and
// returns it once it has committed something (its first progress), with
// a cleanup that kills it.
func startSlowFree(t *testing.T, dev string, delay string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command(bin, "free", "--orphans", "--test-item-delay", delay, dev)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	time.Sleep(1500 * time.Millisecond)
	return cmd, &stderr
}

// One writer per filesystem: while `free` runs through a loop device,
// `recover` and `free` on the image file (and on another loop device over
// it) are refused, naming the running xfsfree.
func TestOneWriterFileAndLoop(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := recovered(t)
	la, lb := testimg.Losetup(t, img), testimg.Losetup(t, img)
	cmd, stderr := startSlowFree(t, la, "50ms")
	for _, args := range [][]string{{"recover", img}, {"free", "--orphans", img}, {"free", "--orphans", lb}, {"info", lb}} {
		r := runCLI(t, args...)
		expectFailure(t, r, exitFailed, "in use", "xfsfree (pid "+strconv.Itoa(cmd.Process.Pid)+")")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("free through %s: %v\n%s", la, err, stderr)
	}
	testimg.Repair(t, img)
}

// An interrupt stops `free` at a transaction boundary: exit 130, the log
// clean, what is left said; a second run finishes, in the kernel's state.
func TestFreeInterrupted(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair", "xfs_logprint")
	img := recovered(t)
	ref := testimg.Path(t, "orphans")
	cmd, stderr := startSlowFree(t, img, "20ms")
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("interrupted free: %v, exit %d\n%s", err, code, stderr)
	}
	msg := stderr.String()
	if !strings.Contains(msg, "interrupted: freed ") || !strings.Contains(msg, "of 313 planned") || !strings.Contains(msg, "the log is clean") {
		t.Errorf("stderr does not say what was done and what is left:\n%s", msg)
	}
	t.Log(msg)
	if out, _ := exec.Command("xfs_logprint", "-t", img).CombinedOutput(); !strings.Contains(string(out), "state: <CLEAN>") {
		t.Fatalf("log not clean after an interrupt:\n%s", out)
	}
	r := runCLI(t, "free", "--orphans", img)
	if r.code != 0 || strings.Contains(r.stdout, "freed 0 orphan(s)") || strings.Contains(r.stdout, "freed 313 orphan(s)") {
		t.Fatalf("second run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	testimg.Repair(t, img)
	testimg.Unmount(t, testimg.Mount(t, ref))
	if got, want := sbCounters(t, img), sbCounters(t, ref); got != want {
		t.Errorf("after interrupt and rerun: %s; kernel: %s", got, want)
	}
}

// A second interrupt stops at once: exit 130 and a message that the log is
// dirty; recover then free finish, in the kernel's state.
func TestFreeInterruptedTwice(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := recovered(t)
	ref := testimg.Path(t, "orphans")
	cmd, stderr := startSlowFree(t, img, "200ms")
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(20 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || !strings.Contains(stderr.String(), "stopped at once") {
		t.Fatalf("twice interrupted free: exit %d\n%s", code, stderr)
	}
	t.Log(stderr.String())
	for _, args := range [][]string{{"recover", img}, {"free", "--orphans", img}} {
		if r := runCLI(t, args...); r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	testimg.Repair(t, img)
	testimg.Unmount(t, testimg.Mount(t, ref))
	if got, want := sbCounters(t, img), sbCounters(t, ref); got != want {
		t.Errorf("after two interrupts, recover and free: %s; kernel: %s", got, want)
	}
}

// Under --json an interrupted free still prints its document: once, the
// report of what was done (interrupted) and the error; twice, the error.
// Both follow the schema, with exit 130.
func TestFreeInterruptedJSON(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	for _, twice := range []bool{false, true} {
		img := recovered(t)
		args := []string{"free", "--json", "--orphans", "--test-item-delay", "50ms", img}
		var stdout, stderr strings.Builder
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		time.Sleep(1500 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		if twice {
			time.Sleep(20 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGTERM)
		}
		cmd.Wait()
		r := result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
		if r.code != exitInterrupted {
			t.Fatalf("twice %v: exit %d\n%s", twice, r.code, r.stderr)
		}
		validateDocument(t, args, r)
		m := members(t, r.stdout)
		if _, ok := m["error"]; !ok || (m["interrupted"] == true) == twice {
			t.Errorf("twice %v: error %v, interrupted %v", twice, m["error"], m["interrupted"])
		}
	}
}

package journal

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Intent pairing in recovery, on logs written by hand after the head of a
// fresh image's clean log. The kernel judges what it can: it recovers the
// logs xfsfree recovers, and refuses to mount those xfsfree refuses as
// corrupt.

func intentItem(f *ondisk.IntentLog) [][]byte { return [][]byte{f.Bytes()} }

func efi(id uint64, start uint64, n uint32) *ondisk.IntentLog {
	return &ondisk.IntentLog{Type: ondisk.LIEFI, Size: 1, ID: id, Free: []ondisk.FreeExtent{{Start: start, Len: n}}}
}

// tryKernelMount mounts img with the kernel and unmounts it if the mount
// worked; it reports whether it did, with mount's output.
func tryKernelMount(t *testing.T, img string) (bool, string) {
	t.Helper()
	testimg.Need(t, "loop", "mount", "umount", "losetup")
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	mnt := t.TempDir()
	mout, err := exec.Command("mount", "-o", "nouuid", dev, mnt).CombinedOutput()
	if err != nil {
		return false, string(mout)
	}
	if uout, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v\n%s", mnt, err, uout)
	}
	return true, string(mout)
}

type intentCase struct {
	name  string
	trans func(g *ondisk.Geometry, x int64) [][][][]byte
	// check judges Recover's result; the image hash is compared by the
	// caller when the recovery is refused.
	check func(t *testing.T, rep *RecoverReport, err error)
	// kernel: what the kernel must do with a copy: "recover" (mount,
	// recovery, same block x as ours), "refuse" (the mount fails), or ""
	// (not asked: the kernel would act on made-up intents).
	kernel string
	// sb is run with xfs_db -x on the image before the log is written.
	sb []string
}

func TestRecoverIntentPairing(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "xfs_repair")
	mustRecover := func(logged, cancelled, unmatched int) func(t *testing.T, rep *RecoverReport, err error) {
		return func(t *testing.T, rep *RecoverReport, err error) {
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if rep.IntentsLogged != logged || rep.IntentsCancelled != cancelled || rep.DoneUnmatched != unmatched || len(rep.PendingIntents) != 0 {
				t.Errorf("intents logged %d cancelled %d unmatched done %d pending %d; want %d %d %d 0",
					rep.IntentsLogged, rep.IntentsCancelled, rep.DoneUnmatched, len(rep.PendingIntents), logged, cancelled, unmatched)
			}
		}
	}
	corrupt := func(st, field string) func(t *testing.T, rep *RecoverReport, err error) {
		return func(t *testing.T, rep *RecoverReport, err error) {
			var ce *ondisk.CorruptError
			if !errors.As(err, &ce) || !strings.Contains(ce.Struct, st) || ce.Field != field {
				t.Fatalf("Recover = %v; want a CorruptError naming %s and %s", err, st, field)
			}
			t.Logf("refused: %v", err)
		}
	}
	cases := []intentCase{
		{name: "efi-then-efd", kernel: "recover", check: mustRecover(1, 1, 0),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				e := efi(0xfeed, g.Fsbno(1, 200), 3)
				return [][][][]byte{{intentItem(e), dataBufItem(x, 0x11)}, {intentItem(ondisk.DoneFor(e)), dataBufItem(x, 0x22)}}
			}},
		{name: "all-kinds-done-in-one-transaction", kernel: "recover", check: mustRecover(3, 3, 0),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				c := &ondisk.IntentLog{Type: ondisk.LICUI, Size: 1, ID: 7, Phys: []ondisk.PhysExtent{{StartBlock: g.Fsbno(2, 300), Len: 2, Flags: ondisk.RefcountDecrease}}}
				b := &ondisk.IntentLog{Type: ondisk.LIBUI, Size: 1, ID: 8, Maps: []ondisk.MapExtent{{Owner: 131, StartBlock: g.Fsbno(2, 300), Len: 2, Flags: ondisk.BmapMap}}}
				e := efi(9, g.Fsbno(2, 300), 2)
				return [][][][]byte{{intentItem(c), intentItem(b)}, {intentItem(e), intentItem(ondisk.DoneFor(c)), dataBufItem(x, 0x33)},
					{intentItem(ondisk.DoneFor(b)), intentItem(ondisk.DoneFor(e))}}
			}},
		{name: "done-cancels-every-intent-with-its-id", kernel: "recover", check: mustRecover(2, 2, 0),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				e := efi(0x77, g.Fsbno(1, 200), 1)
				return [][][][]byte{{intentItem(e)}, {intentItem(e), dataBufItem(x, 0x44)}, {intentItem(ondisk.DoneFor(e))}}
			}},
		{name: "unmatched-done-items", kernel: "recover", check: mustRecover(0, 0, 3),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				return [][][][]byte{{intentItem(&ondisk.IntentLog{Type: ondisk.LICUD, Size: 1, ID: 5}), dataBufItem(x, 0x55)},
					{intentItem(&ondisk.IntentLog{Type: ondisk.LIBUD, Size: 1, ID: 6}), intentItem(ondisk.DoneFor(efi(4, g.Fsbno(1, 9), 1)))}}
			}},
		{name: "done-of-another-type-does-not-cancel",
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				return [][][][]byte{{intentItem(efi(0x99, g.Fsbno(1, 200), 1)), dataBufItem(x, 0x66)},
					{intentItem(&ondisk.IntentLog{Type: ondisk.LICUD, Size: 1, ID: 0x99})}}
			},
			check: func(t *testing.T, rep *RecoverReport, err error) {
				var pe *PendingIntentsError
				if !errors.As(err, &pe) || !errors.Is(err, ErrPendingIntents) || !errors.Is(err, ErrUnsupportedItems) || rep == nil {
					t.Fatalf("Recover = %v, %v; want a PendingIntentsError and the report", rep, err)
				}
				if len(pe.Intents) != 1 || pe.Intents[0].Intent.ID != 0x99 || len(rep.PendingIntents) != 1 || rep.DoneUnmatched != 1 ||
					!strings.Contains(err.Error(), "XFS_LI_EFI 0x99") || !strings.Contains(err.Error(), "mount the filesystem") {
					t.Errorf("refusal %v; pending %+v", err, rep.PendingIntents)
				}
				if p := rep.PendingIntents[0]; p.LSN == 0 || p.Tid != 0x5eed0000 {
					t.Errorf("pending intent lsn %v tid %#x", p.LSN, p.Tid)
				}
			}},
		{name: "pending-intents-in-log-order",
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				c := &ondisk.IntentLog{Type: ondisk.LICUI, Size: 1, ID: 0xc, Phys: []ondisk.PhysExtent{{StartBlock: g.Fsbno(2, 300), Len: 2, Flags: ondisk.RefcountDecrease}}}
				return [][][][]byte{{intentItem(efi(0xa, g.Fsbno(1, 200), 1))}, {intentItem(efi(0xb, g.Fsbno(1, 300), 1)), intentItem(c)},
					{intentItem(ondisk.DoneFor(efi(0xb, 0, 0)))}}
			},
			check: func(t *testing.T, rep *RecoverReport, err error) {
				var pe *PendingIntentsError
				if !errors.As(err, &pe) || len(rep.PendingIntents) != 2 {
					t.Fatalf("Recover = %v; pending %+v", err, rep)
				}
				a, c := rep.PendingIntents[0], rep.PendingIntents[1]
				if a.Intent.ID != 0xa || c.Intent.ID != 0xc || a.Intent.Type != ondisk.LIEFI || c.Intent.Type != ondisk.LICUI ||
					ondisk.CompareLSN(a.LSN, c.LSN) >= 0 || c.Intent.Phys[0].Flags != ondisk.RefcountDecrease {
					t.Errorf("pending %+v %+v", a, c)
				}
				t.Logf("refused: %v", err)
			}},
		{name: "pending-efi-with-extent-length-0", kernel: "refuse", check: corrupt("XFS_LI_EFI 0xbad", "efi_extents[0].ext_start/ext_len"),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				return [][][][]byte{{intentItem(efi(0xbad, g.Fsbno(1, 200), 0)), dataBufItem(x, 0x77)}}
			}},
		{name: "cancelled-efi-with-extent-length-0", kernel: "recover",
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				e := efi(0xbad, g.Fsbno(1, 200), 0)
				return [][][][]byte{{intentItem(e), dataBufItem(x, 0x78)}, {intentItem(ondisk.DoneFor(e))}}
			},
			check: func(t *testing.T, rep *RecoverReport, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(strings.Join(rep.Warnings, "\n"), "a cancelled intent fails the checks recovery makes of pending ones (transaction 0x5eed0000, lsn 1:2): XFS_LI_EFI 0xbad") {
					t.Errorf("warnings %v; want one naming the cancelled bad EFI", rep.Warnings)
				}
			}},
		{name: "pending-rui-without-rmapbt", kernel: "refuse", check: corrupt("XFS_LI_RUI 0x5", "rui_extents[0].me_flags"),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				r := &ondisk.IntentLog{Type: ondisk.LIRUI, Size: 1, ID: 5, Maps: []ondisk.MapExtent{{Owner: 131, StartBlock: g.Fsbno(1, 200), Len: 1, Flags: ondisk.RmapExtentMap}}}
				return [][][][]byte{{intentItem(r), dataBufItem(x, 0x79)}}
			}},
		{name: "efd-of-a-bad-length", kernel: "refuse", check: corrupt("XFS_LI_EFD", "length"),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				b := ondisk.DoneFor(efi(3, g.Fsbno(1, 200), 1)).Bytes()
				return [][][][]byte{{dataBufItem(x, 0x7a)}, {{b[:24]}}}
			}},
		{name: "cui-of-a-bad-length", kernel: "refuse", check: corrupt("XFS_LI_CUI", "length"),
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				c := &ondisk.IntentLog{Type: ondisk.LICUI, Size: 1, ID: 7, Phys: []ondisk.PhysExtent{{StartBlock: g.Fsbno(2, 300), Len: 2, Flags: 2}}}
				b := c.Bytes()
				return [][][][]byte{{dataBufItem(x, 0x7b)}, {{append(b, 0, 0, 0, 0)}}}
			}},
		{name: "attri-refused-by-name",
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				a := make([]byte, 40)
				a[0], a[1], a[2] = byte(ondisk.LIATTRI&0xff), byte(ondisk.LIATTRI>>8), 1
				return [][][][]byte{{{a}, dataBufItem(x, 0x7c)}}
			},
			check: func(t *testing.T, rep *RecoverReport, err error) {
				var ue *UnsupportedItemsError
				if !errors.As(err, &ue) || ue.Items["XFS_LI_ATTRI"] != 1 {
					t.Fatalf("Recover = %v; want a refusal naming XFS_LI_ATTRI", err)
				}
			}},
		{name: "unknown-log-incompat-bit", kernel: "refuse", sb: []string{"sb 0", "write -d features_log_incompat 0x40000000"},
			trans: func(g *ondisk.Geometry, x int64) [][][][]byte {
				return [][][][]byte{{dataBufItem(x, 0x7d)}}
			},
			check: func(t *testing.T, rep *RecoverReport, err error) {
				if !errors.Is(err, ondisk.ErrUnsupported) || !strings.Contains(err.Error(), "0x40000000") {
					t.Fatalf("Recover = %v; want a refusal naming the log-incompat bit", err)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mkImage(t, nil)
			if len(c.sb) > 0 {
				testimg.DBWrite(t, img, c.sb...)
			}
			dev, lg, st := openWriteDev(t, img)
			g := fsGeometry(t, dev)
			x := g.AgbToDaddr(1, g.AGBlocks-16) // free space at the end of AG 1
			writeTransactions(t, dev, lg, st, c.trans(g, x)...)
			dev.Close()
			kern := copyImage(t, img)
			sum := testimg.Hash(t, img)
			var rep *RecoverReport
			var err error
			for _, dry := range []bool{true, false} {
				dev, lg, st := openWriteDev(t, img)
				rep, err = Recover(dev, g, lg, st, RecoverOptions{DryRun: dry})
				dev.Close()
				if err != nil || dry {
					if testimg.Hash(t, img) != sum {
						t.Fatalf("a refused or dry-run Recover (dry run %v, %v) wrote to the image", dry, err)
					}
				}
				c.check(t, rep, err)
			}
			switch c.kernel {
			case "recover":
				if !kernelMount(t, kern) {
					t.Fatalf("the kernel did not recover the copy")
				}
				ours, theirs := readBB(t, img, x), readBB(t, kern, x)
				if string(ours) != string(theirs) {
					t.Errorf("block %d: ours starts % x, the kernel's % x", x, ours[:8], theirs[:8])
				}
				if kernelMount(t, img) {
					t.Errorf("the kernel ran recovery after ours")
				}
				testimg.Repair(t, img)
			case "refuse":
				ok, out := tryKernelMount(t, kern)
				if ok {
					t.Errorf("the kernel mounted the copy that xfsfree refused")
				} else {
					t.Logf("the kernel refused too: %s", strings.TrimSpace(out))
				}
			}
		})
	}
}

// TestRecoverIntentFuzzedLength: every truncation and extension of an EFI,
// an EFD, a CUI and a BUD region is refused or accepted by the length rules
// alone, never panicking.
func TestRecoverIntentFuzzedLength(t *testing.T) {
	for _, f := range []*ondisk.IntentLog{efi(1, 100, 1), ondisk.DoneFor(efi(1, 100, 1)),
		{Type: ondisk.LICUI, Size: 1, ID: 2, Phys: []ondisk.PhysExtent{{StartBlock: 1, Len: 1, Flags: 1}}}, {Type: ondisk.LIBUD, Size: 1, ID: 3}} {
		b := f.Bytes()
		for n := 2; n <= len(b)+20; n++ {
			c := make([]byte, n)
			copy(c, b)
			_, err := ondisk.DecodeIntentLog(c)
			if (err == nil) != (n == len(b) || (f.Type == ondisk.LIEFI || f.Type == ondisk.LIEFD) && n == 28) {
				t.Errorf("%s of %d bytes (logged %d): %v", f.Name(), n, len(b), err)
			}
		}
	}
}

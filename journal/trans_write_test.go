package journal

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Transaction provides what the cluster free needs.
var _ icluster.Tx = (*Transaction)(nil)

// session opens img read-write with a buffer cache and a journal session.
type session struct {
	dev *cache.Device
	c   *cache.Cache
	fg  *ondisk.Geometry
	s   *Session
}

func openSession(t *testing.T, img string) *session {
	t.Helper()
	dev, lg, st := openWriteDev(t, img)
	b, err := dev.ReadAt(0, 8)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	fg, err := ondisk.NewGeometry(sb)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(dev, lg, st)
	if err != nil {
		t.Fatal(err)
	}
	c := cache.NewCache(dev, cache.CacheOptions{Geometry: fg, VerifyWrites: true})
	return &session{dev: dev, c: c, fg: fg, s: NewSession(w, c, fg)}
}

// setLabel changes sb_fname in tx.
func (ss *session) setLabel(t *testing.T, tx *Transaction, label string) {
	t.Helper()
	b, err := tx.ReadBuf(0, ss.fg.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: ss.fg, AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	clear(b.Data[108:120])
	copy(b.Data[108:120], label)
	tx.LogRange(b, 108, 119)
}

// relogAll joins every AG's AGI, AGF, AGFL and the root blocks of its
// free-space and inode btrees, logging each in full, unchanged: big
// transactions whose replay changes nothing but LSNs and CRCs.
func (ss *session) relogAll(t *testing.T, tx *Transaction) (bufs int) {
	t.Helper()
	g := ss.fg
	for agno := uint32(0); agno < g.AGCount; agno++ {
		ctx := ondisk.VerifyCtx{G: g, AG: agno}
		var agf *ondisk.AGF
		var agi *ondisk.AGI
		for _, h := range []struct {
			d    int64
			kind *ondisk.BlockKind
		}{{g.AGFDaddr(agno), ondisk.KindAGF}, {g.AGIDaddr(agno), ondisk.KindAGI}, {g.AGFLDaddr(agno), ondisk.KindAGFL}} {
			b, err := tx.ReadBuf(h.d, g.SectBBs(), h.kind, ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.LogRange(b, 0, len(b.Data)-1)
			bufs++
			switch h.kind {
			case ondisk.KindAGF:
				agf, _ = ondisk.DecodeAGF(b.Data)
			case ondisk.KindAGI:
				agi, _ = ondisk.DecodeAGI(b.Data)
			}
		}
		roots := []struct {
			agbno uint32
			kind  *ondisk.BlockKind
		}{{agf.Roots[0], ondisk.KindBnobt}, {agf.Roots[1], ondisk.KindCntbt}, {agi.Root, ondisk.KindInobt}}
		if g.SB.HasFinobt() {
			roots = append(roots, struct {
				agbno uint32
				kind  *ondisk.BlockKind
			}{agi.FreeRoot, ondisk.KindFinobt})
		}
		for _, r := range roots {
			b, err := tx.ReadBuf(g.AgbToDaddr(agno, r.agbno), g.BlockBBs(), r.kind, ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.LogRange(b, 0, len(b.Data)-1)
			bufs++
		}
	}
	return bufs
}

// smallLogEnv lets mkfs.xfs make logs below 64 MiB (its test-suite
// switch), for many AGs on a small image and for logs that wrap quickly.
var smallLogEnv = []string{"TEST_DEV=1", "TEST_DIR=1", "QA_CHECK_FS=1"}

// sbLabel reads the label with xfs_db.
func sbLabel(t *testing.T, img string) string {
	t.Helper()
	v := strings.Trim(testimg.ParseFields(testimg.DB(t, img, "sb 0", "p fname"))["fname"], `"`)
	return strings.ReplaceAll(v, `\000`, "")
}

// logprintCounts runs xfs_logprint -t and counts the transactions and the
// buffer items it lists.
func logprintCounts(t *testing.T, img string) (trans, bufs int, out string) {
	t.Helper()
	o, err := exec.Command("xfs_logprint", "-t", img).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_logprint -t: %v\n%s", err, o)
	}
	out = string(o)
	tids, items := logprintItems(out)
	for _, it := range items {
		for _, i := range it {
			if strings.HasPrefix(i, "BUF ") {
				bufs++
			}
		}
	}
	return len(tids), bufs, out
}

// crashCopy closes the session's device without checkpoint or unmount
// record: the image is what a power cut after the last commit leaves.
func (ss *session) crash() { ss.dev.Close() }

// kernelRecover mounts img, reports whether the kernel ran recovery, and
// unmounts it.
func kernelRecover(t *testing.T, img string) bool { return kernelMount(t, img) }

func TestBigTransactionReplayedByKernel(t *testing.T) {
	testimg.Need(t)
	for _, tc := range []struct {
		name   string
		opts   []string
		single bool // one record is enough: the point is 8 header blocks
	}{
		{"agcount16", []string{"-d", "agcount=16"}, false},
		{"sunit64k", []string{"-d", "agcount=8", "-l", "su=64k,size=16m"}, false},
		{"sunit256k", []string{"-d", "agcount=8", "-l", "su=256k,size=24m"}, true},
		{"bs65536", []string{"-b", "size=65536", "-i", "sparse=0"}, false}, // 64 KiB btree blocks: regions split over records
		{"bs1024", []string{"-d", "agcount=16", "-b", "size=1024"}, false},
		{"sect4096", []string{"-d", "agcount=16", "-s", "size=4096"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := mkImage(t, smallLogEnv, tc.opts...)
			ss := openSession(t, img)
			tx := ss.s.Begin()
			n := ss.relogAll(t, tx)
			ss.setLabel(t, tx, "bigtrans")
			size := tx.Size()
			if max := ss.s.MaxTransBytes(); size > max {
				t.Fatalf("transaction of %d bytes exceeds MaxTransBytes %d", size, max)
			}
			h0, _ := ss.s.Writer().Head()
			lsn, err := tx.Commit()
			if err != nil {
				t.Fatal(err)
			}
			h1, _ := ss.s.Writer().Head()
			recs := (h1 - h0) / ss.s.Writer().RecordBBs(ss.s.Writer().MaxRecordData())
			t.Logf("%d buffers, %d bytes, records from block %d to %d (lsn %v, ~%d full records)", n+1, size, h0, h1, lsn, recs)
			if !tc.single && size <= int64(ss.s.Writer().MaxRecordData()) {
				t.Fatalf("transaction of %d bytes fits in one record", size)
			}
			ss.crash()
			trans, bufs, out := logprintCounts(t, img)
			if trans != 1 || bufs != n+1 {
				t.Fatalf("xfs_logprint -t lists %d transactions and %d BUF items, want 1 and %d\n%s", trans, bufs, n+1, out)
			}
			if !kernelRecover(t, img) {
				t.Fatal("kernel did not run recovery")
			}
			if l := sbLabel(t, img); l != "bigtrans" {
				t.Fatalf("label after kernel recovery %q", l)
			}
			testimg.Repair(t, img)
		})
	}
}

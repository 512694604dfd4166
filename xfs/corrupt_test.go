package xfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Crafted corruption: each test starts from a real image, changes one field
// with xfs_db -x (or one byte by offset), and checks that the read side
// names the AG, the block and the field, goes on with the other AGs, and
// writes nothing.

// flipByte xors one byte of the file at off.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// scanExpectAGError scans img, expects exactly AG bad to fail with an error
// containing every string of want, and the other AGs to be scanned; it
// checks that the scan wrote nothing. It returns the AG's error.
func scanExpectAGError(t *testing.T, img string, bad uint32, want ...string) string {
	t.Helper()
	before := testimg.Hash(t, img)
	fs := openRO(t, img)
	r, err := fs.Scan(nil)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(r.Errors) != 1 || r.Errors[0].AG != bad {
		t.Fatalf("scan errors %+v, want one, in AG %d", r.Errors, bad)
	}
	msg := r.Errors[0].Message
	t.Logf("AG %d: %s", bad, msg)
	if r.AGs[bad].Error == nil || r.AGs[bad].Error.Message != msg {
		t.Errorf("AG %d entry error %v, report error %q", bad, r.AGs[bad].Error, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	for _, a := range r.AGs {
		if a.AG != bad && a.Error != nil {
			t.Errorf("AG %d failed too: %s", a.AG, a.Error)
		}
	}
	fs.Close()
	if testimg.Hash(t, img) != before {
		t.Errorf("the scan of a corrupt image wrote to it")
	}
	return msg
}

// agbnoDaddr returns the daddr of AG block agbno of AG agno.
func agbnoDaddr(t *testing.T, img string, agno, agbno uint32) int64 {
	t.Helper()
	sb := testimg.Superblock(t, img)
	agblocks, bs := num(t, sb, "agblocks"), num(t, sb, "blocksize")
	return int64((uint64(agno)*agblocks + uint64(agbno)) * bs / 512)
}

// TestCorruptAGICRC flips a byte of AG 1's AGI: Scan and Info report AG 1,
// the AGI's daddr and the CRC; Scan goes on with the other AGs.
func TestCorruptAGICRC(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	sb := testimg.Superblock(t, img)
	agblocks, bs, ss := num(t, sb, "agblocks"), num(t, sb, "blocksize"), num(t, sb, "sectsize")
	const agno = 1
	agiOff := int64(agno*agblocks*bs + 2*ss)
	flipByte(t, img, agiOff+32) // agi_newino
	// (xfs_db reports the CRC error on stderr when it starts.)
	daddr := agiOff / 512
	scanExpectAGError(t, img, agno, "AG 1", fmt.Sprintf("daddr %d", daddr), "AGI", "crc")

	fs := openRO(t, img)
	_, err := fs.Info()
	if err == nil || !strings.Contains(err.Error(), "AG 1") || !strings.Contains(err.Error(), fmt.Sprintf("daddr %d", daddr)) {
		t.Errorf("Info: %v, want an error naming AG 1 and daddr %d", err, daddr)
	}
	if !errors.Is(err, ondisk.ErrCorrupt) {
		t.Errorf("Info error %v does not wrap ErrCorrupt", err)
	}
}

// TestCorruptAGFMagic writes a wrong AGF magic (CRC recomputed): Info names
// the AGF; Scan, which does not read the AGF, is unaffected.
func TestCorruptAGFMagic(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "default")
	testimg.DBWrite(t, img, "agf 2", "write -d magicnum 0x12345678")
	fs := openRO(t, img)
	_, err := fs.Info()
	if err == nil || !strings.Contains(err.Error(), "AG 2") || !strings.Contains(err.Error(), "AGF") {
		t.Errorf("Info: %v, want an error naming AG 2 and the AGF", err)
	}
}

// TestCorruptInobtMagic writes a wrong magic into AG 1's inobt root (CRC
// recomputed): the error names the AG, the block and the magic.
func TestCorruptInobtMagic(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	const agno = 1
	root := uint32(num(t, testimg.AGI(t, img, agno), "root"))
	geo := testimg.Geo(t, img)
	testimg.DBWrite(t, img, fmt.Sprintf("fsblock %d", geo.FSBlock(agno, root)), "type inobt", "write -d magic 0x41425442")
	msg := scanExpectAGError(t, img, agno, "AG 1", fmt.Sprintf("daddr %d", agbnoDaddr(t, img, agno, root)))
	if !strings.Contains(strings.ToLower(msg), "magic") {
		t.Errorf("error %q does not name the magic", msg)
	}
}

// TestCorruptInobtRecord makes an inobt record inconsistent (freecount
// against the free mask, CRC recomputed): the error names the record.
func TestCorruptInobtRecord(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	const agno = 2
	root := uint32(num(t, testimg.AGI(t, img, agno), "root"))
	geo := testimg.Geo(t, img)
	testimg.DBWrite(t, img, fmt.Sprintf("fsblock %d", geo.FSBlock(agno, root)), "type inobt", "write -d recs[1].freecount 7")
	scanExpectAGError(t, img, agno, "AG 2", fmt.Sprintf("daddr %d", agbnoDaddr(t, img, agno, root)), "inobt record", "ir_freecount")
}

// orphanChain returns an AG's longest bucket chain (xfs_db's) and its bucket.
func orphanChain(t *testing.T, img string, agno uint32) (int, []uint32) {
	t.Helper()
	chains := testimg.OrphanChains(t, img, agno)
	best := -1
	for b, c := range chains {
		if best < 0 || len(c) > len(chains[best]) {
			best = b
		}
	}
	if len(chains[best]) < 3 {
		t.Fatalf("AG %d has no chain of 3 orphans: %v", agno, chains)
	}
	return best, chains[best]
}

// TestCorruptChainLoop points the last orphan of a chain back at the head:
// the scan reports a *agi.ChainError printing the chain.
func TestCorruptChainLoop(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	geo := testimg.Geo(t, img)
	const agno = 3
	bucket, chain := orphanChain(t, img, agno)
	last := chain[len(chain)-1]
	testimg.DBWrite(t, img, fmt.Sprintf("inode %d", geo.Ino(agno, last)), fmt.Sprintf("write next_unlinked %d", chain[0]))
	var path []string
	for _, a := range append(chain, chain[0]) {
		path = append(path, fmt.Sprint(a))
	}
	scanExpectAGError(t, img, agno, "AG 3", fmt.Sprintf("bucket %d", bucket), "loops", strings.Join(path, " -> "))

	fs := openRO(t, img)
	_, err := fs.ScanAG(agno)
	var ce *agi.ChainError
	if !errors.As(err, &ce) || ce.AG != agno || ce.Bucket != bucket || len(ce.Chain) != len(chain)+1 {
		t.Fatalf("ScanAG: %v, want a ChainError for bucket %d with chain %v", err, bucket, append(chain, chain[0]))
	}
	if !errors.Is(err, ondisk.ErrCorrupt) {
		t.Errorf("ChainError does not wrap ErrCorrupt")
	}
}

// TestCorruptChainWrongBucket points an orphan at another orphan of the AG
// that hashes to another bucket.
func TestCorruptChainWrongBucket(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	geo := testimg.Geo(t, img)
	const agno = 3
	bucket, chain := orphanChain(t, img, agno)
	other := testimg.OrphanChains(t, img, agno)[(bucket+1)%64]
	if len(other) == 0 {
		t.Skip("no orphan in the next bucket")
	}
	testimg.DBWrite(t, img, fmt.Sprintf("inode %d", geo.Ino(agno, chain[0])), fmt.Sprintf("write next_unlinked %d", other[0]))
	scanExpectAGError(t, img, agno, "AG 3", fmt.Sprintf("bucket %d", bucket), fmt.Sprintf("belongs to bucket %d", (bucket+1)%64),
		fmt.Sprintf("%d -> %d", chain[0], other[0]))
}

// TestCorruptChainLeavesAG points an orphan's next_unlinked outside the AG
// (CRC recomputed): the inode buffer's verifier, as the kernel's, refuses
// it, naming the AG, the cluster's daddr and di_next_unlinked.
func TestCorruptChainLeavesAG(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	geo := testimg.Geo(t, img)
	const agno = 3
	_, chain := orphanChain(t, img, agno)
	outside := uint32(1) << (geo.AGBlkLog + geo.InoPBLog) // the first agino past the AG
	testimg.DBWrite(t, img, fmt.Sprintf("inode %d", geo.Ino(agno, chain[0])), fmt.Sprintf("write -d next_unlinked %d", outside))
	scanExpectAGError(t, img, agno, "AG 3", "daddr", "di_next_unlinked")
}

// TestCorruptBucketHeadLeavesAG writes an AGI bucket head outside the AG
// (CRC recomputed).
func TestCorruptBucketHeadLeavesAG(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	geo := testimg.Geo(t, img)
	const agno = 2
	outside := uint32(1)<<(geo.AGBlkLog+geo.InoPBLog) + 5
	testimg.DBWrite(t, img, fmt.Sprintf("agi %d", agno), fmt.Sprintf("write -d unlinked[5] %d", outside))
	scanExpectAGError(t, img, agno, "AG 2", "agi_unlinked[5]", fmt.Sprintf("%#x", outside))
}

// TestCorruptChainToFreeInode points an orphan at a free inode of its
// bucket: not an orphan, so the chain is refused.
func TestCorruptChainToFreeInode(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	geo := testimg.Geo(t, img)
	const agno = 3
	// A bucket with orphans and a free inode of the AG that hashes to it.
	chains := testimg.OrphanChains(t, img, agno)
	var chain []uint32
	var bucket int
	var target uint32
	for _, r := range testimg.InobtRecords(t, img, agno, false) {
		for i := range uint32(64) {
			agino := uint32(r["startino"]) + i
			if r["free"]&(1<<i) != 0 && r["holemask"]&(1<<(i/4)) == 0 && len(chains[agino%64]) > 0 {
				bucket, chain, target = int(agino%64), chains[agino%64], agino
			}
		}
	}
	if chain == nil {
		t.Skipf("no free inode in a bucket with orphans in AG %d", agno)
	}
	last := chain[len(chain)-1]
	testimg.DBWrite(t, img, fmt.Sprintf("inode %d", geo.Ino(agno, last)), fmt.Sprintf("write next_unlinked %d", target))
	scanExpectAGError(t, img, agno, "AG 3", fmt.Sprintf("bucket %d", bucket), fmt.Sprint(target))
}

package xfs

// The filesystem handle: Open, the superblock and geometry, the per-AG
// work in parallel (forEachAG). The package documentation is in doc.go.

import (
	"fmt"
	"strings"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Options configure Open.
type Options struct {
	// ReadOnly opens the device for reading only.
	ReadOnly bool
	// Buffered uses buffered I/O instead of O_DIRECT.
	Buffered bool
	// Offset and Size (bytes) restrict the device to the byte range of a
	// partition of a whole-disk image or device (package partition finds
	// them): every read and write stays inside it (cache.OpenOptions).
	// Size 0 means to the end of the device.
	Offset, Size int64
	// CacheBytes bounds the buffer cache (0: the cache's default).
	CacheBytes int64
	// Workers is the number of AGs worked on at once (0: 8).
	Workers int
	// WriteHook, if set, makes a device write hook that Open installs as
	// soon as the device is open (crash injection: see CrashHook).
	WriteHook func(dev *cache.Device) cache.WriteHook

	// onClose, if set, is told the device's and the cache's counters when
	// the filesystem is closed (clean sums its handles' I/O).
	onClose func(cache.DeviceStats, cache.CacheStats)
}

// FS is an open filesystem. Its methods are safe for concurrent use.
type FS struct {
	Path   string
	Dev    *cache.Device
	Cache  *cache.Cache
	Inodes *cache.InodeCache
	SB     *ondisk.Superblock
	G      *ondisk.Geometry
	opts   Options
	log    *journal.Session // set by OpenWrite (write.go)
	// afterIntent, if set, is called after each pending intent is
	// finished (crash tests).
	afterIntent func(fs *FS)
}

// Open opens the device or image at path, refusing one that is mounted,
// and reads and verifies its primary superblock: a v4 filesystem, an
// unsupported or unknown incompat feature, NEEDSREPAIR or a v1 log are
// refused with a message saying why.
func Open(path string, o Options) (*FS, error) {
	dev, err := cache.Open(path, cache.OpenOptions{ReadOnly: o.ReadOnly, Buffered: o.Buffered, Offset: o.Offset, Size: o.Size})
	if err != nil {
		return nil, err
	}
	if o.WriteHook != nil {
		dev.SetWriteHook(o.WriteHook(dev))
	}
	fs := &FS{Path: path, Dev: dev, opts: o}
	if err := fs.load(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fs, nil
}

func (fs *FS) load() error {
	if n := fs.Dev.Size(); n < ondisk.BBSize {
		return fmt.Errorf("not an XFS filesystem: %d bytes, too small to hold a superblock", n)
	}
	first, err := fs.Dev.ReadAt(ondisk.SBDaddr, 1)
	if err != nil {
		return err
	}
	sb, err := ondisk.DecodeSuperblock(first)
	if err != nil {
		return err
	}
	if sb.MagicNum != ondisk.SBMagic {
		return fmt.Errorf("not an XFS filesystem: %w", ondisk.Where{AG: 0, Daddr: 0}.Corrupt("superblock", "sb_magicnum", sb.MagicNum, uint32(ondisk.SBMagic), ""))
	}
	sect := first
	if n := int(sb.SectSize); n > ondisk.BBSize && n <= 32768 && n%ondisk.BBSize == 0 {
		if sect, err = fs.Dev.ReadAt(ondisk.SBDaddr, n/ondisk.BBSize); err != nil {
			return err
		}
	}
	if err := sb.Verify(sect); err != nil {
		return err
	}
	if err := sb.CheckSupported(); err != nil {
		return err
	}
	g, err := ondisk.NewGeometry(sb)
	if err != nil {
		return err
	}
	if need := int64(sb.DBlocks) << sb.BlockLog; fs.Dev.Size() < need {
		return fmt.Errorf("%w: the device holds %d bytes but the superblock says the filesystem has %d (sb_dblocks %d): truncated image?",
			ondisk.ErrCorrupt, fs.Dev.Size(), need, sb.DBlocks)
	}
	fs.SB, fs.G = sb, g
	fs.Cache = cache.NewCache(fs.Dev, cache.CacheOptions{MaxBytes: fs.opts.CacheBytes, Geometry: g})
	fs.Inodes = cache.NewInodeCache(sb.AGCount, 0)
	// Hold the primary superblock through the cache from now on.
	b, err := fs.Cache.Get(ondisk.SBDaddr, g.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: g, AG: 0, Daddr: 0})
	if err != nil {
		return err
	}
	b.Release()
	return nil
}

// Close closes the device.
func (fs *FS) Close() error {
	if fs.opts.onClose != nil && fs.Cache != nil {
		fs.opts.onClose(fs.Dev.Stats(), fs.Cache.Stats())
	}
	return fs.Dev.Close()
}

// LogState finds the log's head and tail. For an external log it returns
// a nil state.
func (fs *FS) LogState() (*journal.State, error) {
	lg, err := journal.NewGeometry(fs.G)
	if err != nil {
		return nil, err
	}
	if lg.External {
		return nil, nil
	}
	return journal.New(fs.Dev, lg).FindTail()
}

// DirtyLogNote is what read-only commands say about a dirty log.
const DirtyLogNote = "the log is dirty (not cleanly unmounted, or a snapshot of a live filesystem): " +
	"the on-disk metadata may lag the log; run 'xfsfree recover' or mount the filesystem to replay it"

func label(b [12]byte) string {
	return strings.TrimRight(string(b[:]), "\x00")
}

func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// forEachAG runs fn for every AG on up to Workers goroutines, calling
// progress after each; it returns the errors by AG (nil where fn
// succeeded).
func (fs *FS) forEachAG(fn func(agno uint32) error, progress func(done, total int)) []error {
	n := int(fs.G.AGCount)
	errs := make([]error, n)
	workers := fs.opts.Workers
	if workers <= 0 {
		workers = 8
	}
	workers = min(workers, n)
	next := make(chan uint32)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			for agno := range next {
				errs[agno] = fn(agno)
				done <- struct{}{}
			}
		}()
	}
	go func() {
		for agno := 0; agno < n; agno++ {
			next <- uint32(agno)
		}
		close(next)
	}()
	for i := 1; i <= n; i++ {
		<-done
		if progress != nil {
			progress(i, n)
		}
	}
	return errs
}

// firstErr returns the first non-nil error.
func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

package xfs

// The background writeback of a free run (the kernel's AIL push and inode
// reclaim workers): woken by commits when half the log is in use or when
// too many buffers hold changes not written in place, it writes in place
// the buffers whose checkpoints are durable (the journal's Writeback: never
// one of a checkpoint not yet durable, never a cancelled one; the inodes
// attached to them flushed) and then reclaims clean, unreferenced inodes
// past the inode cache's bound. It waits for no buffer an open transaction
// holds.

import "sync/atomic"

type writeback struct {
	fs         *FS
	kick, quit chan struct{}
	done       chan struct{}
	half       int64 // BBs: half the log
	dirty      int   // buffers not written in place that wake it
	maxInodes  int
	err        error // set by the loop before done closes
	writebacks atomic.Int64
	reclaimed  atomic.Int64
}

func (fs *FS) startWriteback(o FreeOptions) *writeback {
	wb := &writeback{fs: fs, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		half: fs.G.LogBBs / 2, dirty: o.DirtyBuffers, maxInodes: o.MaxCachedInodes}
	if wb.dirty <= 0 {
		wb.dirty = 4096
	}
	if wb.maxInodes <= 0 {
		wb.maxInodes = 1 << 16
	}
	fs.log.SetCommitHook(func(used int64, _ uint64) {
		if used > wb.half || fs.log.Dirty() > wb.dirty || fs.Inodes.Len() > wb.maxInodes {
			select {
			case wb.kick <- struct{}{}:
			default:
			}
		}
	})
	go wb.loop()
	return wb
}

func (wb *writeback) loop() {
	defer close(wb.done)
	for {
		select {
		case <-wb.quit:
			return
		case <-wb.kick:
		}
		log := wb.fs.log
		if log.Dirty() > wb.dirty {
			// Too much is waiting for a checkpoint still open: push it,
			// so that its buffers can be written.
			if err := log.Force(); err != nil {
				wb.err = err
				return
			}
		}
		if err := log.Writeback(); err != nil {
			wb.err = err
			return
		}
		wb.writebacks.Add(1)
		// Down to three quarters of the bound: a reclaim scans the
		// cache, so each one should make room for many inodes (down
		// to the bound itself, a million frees scanned 65,536 inodes
		// to reclaim a handful, over and over).
		wb.reclaimed.Add(int64(wb.fs.Inodes.Reclaim(wb.maxInodes * 3 / 4)))
	}
}

// stop ends the writeback (the commits' hook first) and returns the
// error that stopped it, if any.
func (wb *writeback) stop() error {
	wb.fs.log.SetCommitHook(nil)
	close(wb.quit)
	<-wb.done
	return wb.err
}

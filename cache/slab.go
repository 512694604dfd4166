package cache

// Buffer memory: O_DIRECT needs aligned memory, and an aligned block of
// its own per buffer (directio.AlignedBlock) costs up to a page more than
// the buffer — a 512-byte sector took 4.5 KiB — so the cache's byte bound
// was not the memory it used. Buffers are carved from 1 MiB aligned slabs
// instead (4 KiB-aligned from 4 KiB up, 512-byte aligned below: the device
// copies through an aligned bounce buffer when its I/O alignment is
// larger), and the memory of an evicted buffer is kept for the next buffer
// of the same size.

import (
	"sync"

	"github.com/ncw/directio"
)

const slabSize = 1 << 20

type slabs struct {
	mu   sync.Mutex
	free map[int][][]byte // evicted buffers' memory, by size
	slab []byte           // the slab being carved
	off  int
}

// get returns n zeroed bytes of buffer memory (n a multiple of 512).
func (s *slabs) get(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		s.free[n] = l[:len(l)-1]
		clear(b)
		return b
	}
	if n > slabSize/4 {
		return directio.AlignedBlock(n)
	}
	align := directio.AlignSize
	if n < align {
		align = BBSize
	}
	off := (s.off + align - 1) &^ (align - 1)
	if s.slab == nil || off+n > len(s.slab) {
		s.slab, off = directio.AlignedBlock(slabSize), 0
	}
	s.off = off + n
	return s.slab[off : off+n : off+n]
}

// put keeps b's memory for a later get of the same size. Nothing may use b
// afterwards.
func (s *slabs) put(b []byte) {
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	if s.free == nil {
		s.free = map[int][][]byte{}
	}
	s.free[len(b)] = append(s.free[len(b)], b)
	s.mu.Unlock()
}

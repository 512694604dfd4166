package fieldfuzz

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// seed keys every fingerprint of this process: fingerprints compare within a run only.
var seed = maphash.MakeSeed()

const chunk = 64 << 10

// fingerprint is a fast stand-in for testimg.Hash (which a case would call half a dozen times on
// a 300 MiB image): a 64-bit keyed hash of the file's size and of every 64 KiB chunk that is not
// all zeros, with its offset, holes skipped with SEEK_DATA/SEEK_HOLE. It depends on the bytes
// only, so it tells whether a command changed an image.
func fingerprint(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	var h maphash.Hash
	h.SetSeed(seed)
	binary.Write(&h, binary.BigEndian, size)
	fd := int(f.Fd())
	buf := make([]byte, chunk)
	zero := make([]byte, chunk)
	next := int64(0) // first chunk not hashed yet
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			data = off
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		for c := max(data&^(chunk-1), next); c < hole; c += chunk {
			n, err := f.ReadAt(buf, c)
			if err != nil && err != io.EOF {
				return 0, err
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				binary.Write(&h, binary.BigEndian, c)
				h.Write(buf[:n])
			}
			next = c + chunk
		}
		off = hole
	}
	return h.Sum64(), nil
}

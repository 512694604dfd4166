package testimg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// hashChunk is the unit Hash reads and skips when all zero.
const hashChunk = 64 << 10

// Hash fingerprints an image file's contents: its size and every 64 KiB
// chunk that is not all zeros, with its offset. Holes are skipped with
// SEEK_DATA/SEEK_HOLE, so a sparse 4 GiB image hashes in the time its data
// takes to read; but the result depends on the bytes only, not on where the
// host filesystem has allocated (delayed allocation moves SEEK_HOLE answers
// while dirty pages are written back). A write of anything but zeros over
// zeros changes it. Tests use it to show that a command wrote nothing.
func Hash(t testing.TB, path string) string {
	t.Helper()
	h := sha256.New()
	if err := DigestSparse(h, path); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DigestSparse writes to h what Hash hashes: the file's size, then the
// offset and bytes of every 64 KiB chunk that is not all zeros, holes
// skipped with SEEK_DATA/SEEK_HOLE. Callers that want a faster hash than
// Hash's SHA-256 give their own.
func DigestSparse(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	binary.Write(h, binary.BigEndian, size)
	fd := int(f.Fd())
	buf := make([]byte, hashChunk)
	zero := make([]byte, hashChunk)
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
		for c := max(data&^(hashChunk-1), next); c < hole; c += hashChunk {
			n, err := f.ReadAt(buf, c)
			if err != nil && err != io.EOF {
				return err
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				binary.Write(h, binary.BigEndian, c)
				h.Write(buf[:n])
			}
			next = c + hashChunk
		}
		off = hole
	}
	return nil
}

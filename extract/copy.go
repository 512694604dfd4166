package extract

// Copying a plan's data: reader goroutines fill aligned buffers with large
// O_DIRECT reads (a segment split at the buffer size, each read aligned to
// the device's I/O alignment) while the caller's goroutine hands the
// filled ones to the sink in file order. Memory is bounded by Readers x
// Buffers x BufferBytes whatever the file's size.

import (
	"fmt"
	"io"
	"os"

	"github.com/ncw/directio"
)

// Options tune Copy.
type Options struct {
	// BufferBytes is the size of one read (default 8 MiB).
	BufferBytes int
	// Readers is the number of reads in flight (default 2).
	Readers int
	// Buffers is the number of buffers of each reader (default 2): one
	// being filled or waiting, one being written.
	Buffers int
	// Progress, if set, is called after each write with the data bytes
	// written so far and Plan.Data.
	Progress func(done, total int64)
}

// Sink receives a file's bytes.
type Sink interface {
	// WriteData writes b at file offset off. Offsets only grow.
	WriteData(b []byte, off int64) error
	// Finish ends the file at size: what was not written is a hole.
	Finish(size int64) error
}

// maxAlign bounds the device's I/O alignment (cache.Device caps it at
// 64 KiB).
const maxAlign = 64 << 10

// ioReq is one read: n bytes of the device at byte offset dev, the file's
// bytes at off, of which keep are below the file's size.
type ioReq struct {
	off, dev, n, keep int64
}

type chunk struct {
	buf  []byte // the whole aligned buffer
	data []byte // the file's bytes in it
	off  int64  // file offset of data
	err  error
}

// ios splits the plan's segments into reads of at most max bytes.
func (p *Plan) ios(max int64) []ioReq {
	var out []ioReq
	for _, sg := range p.Segments {
		for done := int64(0); done < sg.Len; {
			n := min(sg.Len-done, max)
			out = append(out, ioReq{off: sg.Off + done, dev: sg.Daddr*512 + done, n: n, keep: min(n, sg.Keep-done)})
			done += n
		}
	}
	return out
}

// Copy reads the plan's segments from s.Dev and writes them to dst, in
// file order, then finishes dst at the file's size. Reader r reads the
// reads r, r+R, r+2R, ... into its own buffers, and the writer takes them
// round-robin, so several reads are in flight while it writes and no
// reader can wait on a buffer another one holds. It returns the first
// error, of a read or of the sink; the sink then holds a partial file,
// which the caller must not present as complete.
func (p *Plan) Copy(s Source, dst Sink, o Options) error {
	if o.BufferBytes <= 0 {
		o.BufferBytes = 8 << 20
	}
	if o.Readers <= 0 {
		o.Readers = 2
	}

	if o.Buffers <= 0 {
		o.Buffers = 2
	}
	align := int64(max(s.Dev.IOAlign(), 512))
	bufBytes := (int64(o.BufferBytes) + align - 1) / align * align
	reqs := p.ios(bufBytes)
	nr := min(o.Readers, max(len(reqs), 1))
	stop := make(chan struct{})
	full := make([]chan chunk, nr)
	free := make([]chan []byte, nr)
	for r := 0; r < nr; r++ {
		full[r] = make(chan chunk, o.Buffers)
		free[r] = make(chan []byte, o.Buffers)
		for i := 0; i < o.Buffers; i++ {
			free[r] <- directio.AlignedBlock(int(bufBytes + 2*maxAlign))
		}
		go func() {
			defer close(full[r])
			for i := r; i < len(reqs); i += nr {
				q := reqs[i]
				var buf []byte
				select {
				case buf = <-free[r]:
				case <-stop:
					return
				}
				data, err := readAligned(s, buf, q.dev, q.n, align)
				c := chunk{buf: buf, off: q.off, err: err}
				if err == nil {
					c.data = data[:max(q.keep, 0)]
				}
				select {
				case full[r] <- c:
				case <-stop:
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	var written int64
	var err error
	for i := range reqs {
		r := i % nr
		c, ok := <-full[r]
		if !ok {
			break // its reader stopped (after an error already taken)
		}
		switch {
		case c.err != nil:
			err = fmt.Errorf("inode %d: reading file offset %d: %w", p.Ino, c.off, c.err)
		case len(c.data) > 0:
			if err = dst.WriteData(c.data, c.off); err == nil {
				written += int64(len(c.data))
				if o.Progress != nil {
					o.Progress(written, p.Data)
				}
			}
		}
		free[r] <- c.buf
		if err != nil {
			break
		}
	}
	close(stop)
	for r := range full {
		for c := range full[r] { // let every reader end
			free[r] <- c.buf
		}
	}
	if err != nil {
		return err
	}
	return dst.Finish(p.Size)
}

// readAligned reads n bytes at byte offset off of the device into buf,
// widening the read to the device's alignment, and returns the n bytes.
func readAligned(s Source, buf []byte, off, n, align int64) ([]byte, error) {
	start := off &^ (align - 1)
	end := (off + n + align - 1) &^ (align - 1)
	if dsz := s.Dev.Size() &^ 511; end > dsz {
		end = max(dsz, off+n) // the device reads the unaligned tail itself
	}
	if err := s.Dev.ReadInto(start/512, buf[:end-start]); err != nil {
		return nil, err
	}
	return buf[off-start : off-start+n], nil
}

// fileSink writes a regular file sparsely: data with WriteAt, holes left
// unwritten, the size set at the end.
type fileSink struct{ f *os.File }

// ToFile is a sink writing the regular file f sparsely (f should be new
// and empty: what is not written stays a hole).
func ToFile(f *os.File) Sink { return fileSink{f} }

func (s fileSink) WriteData(b []byte, off int64) error {
	_, err := s.f.WriteAt(b, off)
	return err
}

func (s fileSink) Finish(size int64) error { return s.f.Truncate(size) }

// streamSink writes a stream: holes as zeros.
type streamSink struct {
	w   io.Writer
	pos int64
}

// ToStream is a sink writing w in order, holes and unwritten extents as
// zeros (for a pipe or a terminal).
func ToStream(w io.Writer) Sink { return &streamSink{w: w} }

var zeros = make([]byte, 1<<20)

func (s *streamSink) zeroTo(off int64) error {
	for s.pos < off {
		n := min(int64(len(zeros)), off-s.pos)
		if _, err := s.w.Write(zeros[:n]); err != nil {
			return err
		}
		s.pos += n
	}
	return nil
}

func (s *streamSink) WriteData(b []byte, off int64) error {
	if err := s.zeroTo(off); err != nil {
		return err
	}
	_, err := s.w.Write(b)
	s.pos += int64(len(b))
	return err
}

func (s *streamSink) Finish(size int64) error { return s.zeroTo(size) }

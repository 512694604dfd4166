// Package journal owns the XFS log. Reading: finding its head and tail and
// whether it is clean (the kernel's xlog_find_head, xlog_find_tail,
// xlog_verify_head), reading records from tail to head (cycle unpacking,
// extended headers, wrap at the physical end, CRC per record), and
// reassembling transactions by tid. Writing: records at the head (write.go),
// transactions of buffer and buffer-cancel items committed durably before
// any block is written in place (trans.go), checkpoints that write committed
// buffers and move the tail (checkpoint.go), and the unmount record.
// Recovery: pass 1 cancel table, pass 2 replay of buffer, inode and
// inode-create items with v5 LSN ordering (recover.go, replay_*.go).
//
// Block numbers in this package are log-relative BBs (512 bytes) unless a
// name says daddr. The on-disk structures themselves live in ondisk/log_*.go
// (and intents.go).
package journal

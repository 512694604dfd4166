// Package journal owns the XFS log: finding its head and tail and whether it
// is clean (the kernel's xlog_find_head, xlog_find_tail, xlog_verify_head),
// reading its records from tail to head (cycle unpacking, extended headers,
// wrap at the physical end, CRC per record), and splitting record data into
// op headers and regions, reassembled into transactions by tid — the parsing
// layer recovery builds on. Transactions, commit, checkpoint, the unmount
// record and replay are added here by later work.
//
// Block numbers in this package are log-relative BBs (512 bytes) unless a
// name says daddr. The on-disk structures themselves live in ondisk/log.go.
package journal

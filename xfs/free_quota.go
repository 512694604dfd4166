package xfs

// Quota accounting during a free: the kernel's usage counts would no
// longer match, so the quota "checked" flags are cleared (as xfs_repair
// does) and the next mount re-counts usage.

import (
	"encoding/binary"
)

// Quota flags (xfs_format.h): the "quotacheck done" bits that xfs_repair
// clears when it changes usage behind the quota files' back.
const (
	qUquotaChkd = 0x0004
	qOquotaChkd = 0x0020
	qGquotaChkd = 0x0100
	qPquotaChkd = 0x0400
	qAllChkd    = qUquotaChkd | qOquotaChkd | qGquotaChkd | qPquotaChkd
	sbQFlagsOff = 176
)

// clearQuotaChecked clears the quota "checked" flags in the superblock, in
// one transaction.
func (fs *FS) clearQuotaChecked() error {
	tx := fs.Begin()
	b, err := fs.readSB(tx)
	if err != nil {
		tx.Cancel()
		return err
	}
	q := binary.BigEndian.Uint16(b.Data[sbQFlagsOff:]) &^ qAllChkd
	binary.BigEndian.PutUint16(b.Data[sbQFlagsOff:], q)
	tx.LogRange(b, sbQFlagsOff, sbQFlagsOff+1)
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		return err
	}
	fs.SB.QFlags = q
	return nil
}

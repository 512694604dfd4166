package xfs

// Quota accounting during a free: the kernel's usage counts would no
// longer match, so the quota "checked" flags are cleared (as xfs_repair
// does) and the next mount re-counts usage.

import (
	"github.com/xfsfree/xfsfree/ondisk"
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
	q := uint16(ondisk.SBQFlags.Get(b.Data)) &^ ondisk.QFlagAllChkd
	ondisk.SBQFlags.Set(b.Data, uint64(q))
	ondisk.LogFields(tx, b, ondisk.SBQFlags)
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		return err
	}
	fs.SB.QFlags = q
	return nil
}

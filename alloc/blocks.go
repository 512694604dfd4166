package alloc

import "github.com/xfsfree/xfsfree/ondisk"

// AGFLBlocks gives the bnobt, cntbt and rmapbt their blocks from the AGFL
// and takes freed ones back onto it (xfs_allocbt_alloc_block and
// free_block, xfs_rmapbt_alloc_block and free_block): agf_btreeblks
// follows, and for the rmapbt (Rmap) agf_rmap_blocks too. The rmapbt is
// not changed: AGFL blocks and these btrees' blocks are all OWN_AG.
type AGFLBlocks struct {
	AG   *AG
	Rmap bool
}

// Alloc takes the block at the head of the AGFL; near is ignored.
// ErrNoSpace if the AGFL is empty.
func (b *AGFLBlocks) Alloc(tx Tx, near uint32) (uint32, error) {
	bno, err := b.AG.GetFreelist(tx, true)
	if err != nil {
		return 0, err
	}
	if bno == ondisk.NullAgbno {
		return 0, ErrNoSpace
	}
	if b.Rmap {
		if err := b.AG.addCounter(tx, ondisk.AGFRmapBlocks, 1); err != nil {
			return 0, err
		}
	}
	return bno, nil
}

// Free puts the block on the AGFL.
func (b *AGFLBlocks) Free(tx Tx, agbno uint32) error {
	if err := b.AG.PutFreelist(tx, agbno, true); err != nil {
		return err
	}
	if b.Rmap {
		return b.AG.addCounter(tx, ondisk.AGFRmapBlocks, -1)
	}
	return nil
}

// InobtBlocks gives the inobt and finobt their blocks from free space, one
// block near the cursor's, owned by OWN_INOBT in the rmapbt, and frees
// their freed blocks back into free space (__xfs_inobt_alloc_block,
// __xfs_inobt_free_block). With the inobtcount feature, Count is called
// with +1 or -1 for agi_iblocks or agi_fblocks, which the AGI's owner
// keeps.
type InobtBlocks struct {
	AG    *AG
	Count func(tx Tx, delta int) error
}

// Alloc allocates one block near near.
func (b *InobtBlocks) Alloc(tx Tx, near uint32) (uint32, error) {
	bno, err := AllocNear(tx, b.AG, near, 1, OwnerInobt)
	if err != nil {
		return 0, err
	}
	if b.AG.G.HasInobtCount && b.Count != nil {
		if err := b.Count(tx, 1); err != nil {
			return 0, err
		}
	}
	return bno, nil
}

// Free frees the block into free space.
func (b *InobtBlocks) Free(tx Tx, agbno uint32) error {
	if err := FreeExtent(tx, b.AG, agbno, 1, OwnerInobt); err != nil {
		return err
	}
	if b.AG.G.HasInobtCount && b.Count != nil {
		return b.Count(tx, -1)
	}
	return nil
}

package fieldfuzz

import (
	"hash/maphash"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// seed keys every fingerprint of this process: fingerprints compare within a run only.
var seed = maphash.MakeSeed()

// fingerprint is a fast stand-in for testimg.Hash (which a case would call half a dozen times on
// a 300 MiB image): a 64-bit keyed hash of what testimg.DigestSparse gives (the file's size and
// every 64 KiB chunk that is not all zeros, with its offset). It depends on the bytes only, so it
// tells whether a command changed an image.
func fingerprint(path string) (uint64, error) {
	var h maphash.Hash
	h.SetSeed(seed)
	if err := testimg.DigestSparse(&h, path); err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

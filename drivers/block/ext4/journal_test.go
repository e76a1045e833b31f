package ext4

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A journal superblock written by hand from the jbd2 offsets
// (journal_superblock_t, big-endian): header, block size, length, first
// block, sequence, start, features, UUID, users.
func handJournalSuper(incompat uint32) []byte {
	b := make([]byte, 1024)
	be := binary.BigEndian
	be.PutUint32(b[0x0:], 0xC03B3998) // h_magic
	be.PutUint32(b[0x4:], 4)          // superblock v2
	be.PutUint32(b[0xC:], 1024)       // s_blocksize
	be.PutUint32(b[0x10:], 1024)      // s_maxlen
	be.PutUint32(b[0x14:], 1)         // s_first
	be.PutUint32(b[0x18:], 7)         // s_sequence
	be.PutUint32(b[0x28:], incompat)  // s_feature_incompat
	copy(b[0x30:], "0123456789abcdef")
	be.PutUint32(b[0x40:], 1) // s_nr_users
	if incompat&0x10 != 0 {
		b[0x50] = 4 // crc32c
		be.PutUint32(b[0xFC:], crc32c(^uint32(0), append(append(bytes.Clone(b[:0xFC]), 0, 0, 0, 0), b[0x100:]...)))
	}
	return b
}

func TestParseJournalSuper(t *testing.T) {
	j, err := parseJournalSuper(handJournalSuper(0x2|0x10), 1024, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if j.MaxLen != 1024 || j.First != 1 || j.Sequence != 7 || !j.ChecksumV3 || !j.Is64 || j.unusableReason != "" ||
		string(j.UUID[:]) != "0123456789abcdef" {
		t.Errorf("%+v", j)
	}
	for _, c := range []struct {
		name     string
		b        []byte
		fsbs     int64
		blocks   uint64
		corrupt  bool
		unusable bool
	}{
		{"block size", handJournalSuper(0), 4096, 2048, true, false},
		{"longer than inode", handJournalSuper(0), 1024, 100, true, false},
		{"async commit", handJournalSuper(0x4), 1024, 2048, false, true},
		{"csum v2", handJournalSuper(0x8), 1024, 2048, false, true},
		{"bad checksum", func() []byte { b := handJournalSuper(0x10); b[0x18]++; return b }(), 1024, 2048, true, false},
		{"short", make([]byte, 100), 1024, 2048, true, false},
	} {
		j, err := parseJournalSuper(c.b, c.fsbs, c.blocks)
		if (err != nil) != c.corrupt || (j.unusableReason != "") != c.unusable {
			t.Errorf("%s: %v, unusable %q", c.name, err, j.unusableReason)
		}
	}
}

// TestJournalBlocks checks descriptor and commit blocks byte by byte
// against the jbd2 layout (csum v3 tags of 16 bytes, UUID after the
// first tag, flags SAME_UUID 2 and LAST_TAG 8, block tail checksum).
func TestJournalBlocks(t *testing.T) {
	js, err := parseJournalSuper(handJournalSuper(0x2|0x10), 1024, 2048)
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{js: js, seed: crc32c(^uint32(0), []byte("0123456789abcdef"))}
	data := [][]byte{bytes.Repeat([]byte{1}, 1024), bytes.Repeat([]byte{2}, 1024)}
	d := j.descriptor(1024, 7, []uint64{5, 1<<32 | 9}, data)
	be := binary.BigEndian
	want := make([]byte, 1024)
	copy(want, []byte{0xC0, 0x3B, 0x39, 0x98, 0, 0, 0, 1, 0, 0, 0, 7})
	tag1 := []byte{0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	be.PutUint32(tag1[12:], crc32c(crc32c(j.seed, []byte{0, 0, 0, 7}), data[0]))
	copy(want[12:], tag1)
	copy(want[28:], "0123456789abcdef")
	tag2 := []byte{0, 0, 0, 9, 0, 0, 0, 2 | 8, 0, 0, 0, 1, 0, 0, 0, 0}
	be.PutUint32(tag2[12:], crc32c(crc32c(j.seed, []byte{0, 0, 0, 7}), data[1]))
	copy(want[44:], tag2)
	be.PutUint32(want[1020:], crc32c(j.seed, want))
	if !bytes.Equal(d, want) {
		t.Errorf("descriptor\n got %x\nwant %x", d[:64], want[:64])
	}
	c := j.commit(1024, 7, 0x1122334455, 66)
	wantC := make([]byte, 1024)
	copy(wantC, []byte{0xC0, 0x3B, 0x39, 0x98, 0, 0, 0, 2, 0, 0, 0, 7})
	copy(wantC[0x30:], []byte{0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0, 0, 66})
	be.PutUint32(wantC[0x10:], crc32c(j.seed, wantC))
	if !bytes.Equal(c, wantC) {
		t.Errorf("commit\n got %x\nwant %x", c[:64], wantC[:64])
	}
}

func FuzzJournalSuper(f *testing.F) {
	f.Add(handJournalSuper(0x2|0x10), int64(1024), uint64(2048))
	f.Add(handJournalSuper(0), int64(1024), uint64(2048))
	if _, err := exec.LookPath("mke2fs"); err == nil {
		img := filepath.Join(f.TempDir(), "j.img")
		if exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", img, "16M").Run() == nil {
			if b, err := os.ReadFile(img); err == nil {
				// The journal of a 16M ext4 made by mke2fs 1.47 starts
				// at its block 8, after the group 0 metadata.
				for blk := 1; blk < 64; blk++ {
					if be := binary.BigEndian; be.Uint32(b[blk*4096:]) == jMagic {
						f.Add(b[blk*4096:(blk+1)*4096], int64(4096), uint64(1024))
						break
					}
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, bs int64, blocks uint64) {
		j, err := parseJournalSuper(b, bs, blocks)
		if err == nil && (j.First == 0 || j.First >= j.MaxLen || uint64(j.MaxLen) > blocks || int64(j.BlockSize) != bs) {
			t.Fatalf("accepted %+v", j)
		}
	})
}

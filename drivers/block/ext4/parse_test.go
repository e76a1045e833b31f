package ext4

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"testing"
	"time"
)

// Extent nodes written by hand from the "Extent Tree" offsets: header
// {magic 0xF30A, entries, max, depth, generation}, 12-byte entries.
func TestParseExtentNode(t *testing.T) {
	le := binary.LittleEndian
	node := func(depth uint16, entries ...[12]byte) []byte {
		b := make([]byte, 60) // i_block
		le.PutUint16(b[0:], 0xF30A)
		le.PutUint16(b[2:], uint16(len(entries)))
		le.PutUint16(b[4:], 4)
		le.PutUint16(b[6:], depth)
		for i, e := range entries {
			copy(b[12+12*i:], e[:])
		}
		return b
	}
	leaf := func(lblk uint32, length uint16, start uint64) (e [12]byte) {
		le.PutUint32(e[0:], lblk)
		le.PutUint16(e[4:], length)
		le.PutUint16(e[6:], uint16(start>>32))
		le.PutUint32(e[8:], uint32(start))
		return e
	}
	n, err := parseExtentNode(node(0, leaf(0, 8, 100), leaf(10, 32768+5, 1<<32|7)), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	want := []extent{{logical: 0, length: 8, physical: 100}, {logical: 10, length: 5, physical: 1<<32 | 7, uninit: true}}
	if len(n.leaves) != 2 || n.leaves[0] != want[0] || n.leaves[1] != want[1] {
		t.Errorf("leaves %+v", n.leaves)
	}
	var idx [12]byte
	le.PutUint32(idx[0:], 0)
	le.PutUint32(idx[4:], 555)
	le.PutUint16(idx[8:], 1)
	n, err = parseExtentNode(node(1, idx), 1<<40)
	if err != nil || n.depth != 1 || len(n.children) != 1 || n.children[0] != 1<<32|555 {
		t.Errorf("index node %+v %v", n, err)
	}
	bad := node(0, leaf(0, 8, 100))
	bad[0] = 0
	for name, b := range map[string][]byte{
		"magic":        bad,
		"past the end": node(0, leaf(0, 8, 995)),
		"zero length":  node(0, leaf(0, 0, 100)),
		"overlap":      node(0, leaf(0, 8, 100), leaf(4, 8, 200)),
		"unsorted":     node(0, leaf(10, 1, 100), leaf(0, 1, 200)),
		"index to 0":   node(1, [12]byte{}),
		"too deep":     node(9, leaf(0, 1, 100)),
		"short":        make([]byte, 8),
	} {
		if _, err := parseExtentNode(b, 1000); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	over := node(0, leaf(0, 1, 100))
	le.PutUint16(over[2:], 5) // entries > max
	if _, err := parseExtentNode(over, 1000); !errors.Is(err, ErrCorrupt) {
		t.Errorf("entries above max: %v", err)
	}
}

// A directory block by hand ("Directory Entries", ext4_dir_entry_2:
// inode u32, rec_len u16, name_len u8, file_type u8, name).
func TestParseDirBlock(t *testing.T) {
	le := binary.LittleEndian
	b := make([]byte, 1024)
	put := func(off int, ino uint32, rec uint16, name string) {
		le.PutUint32(b[off:], ino)
		le.PutUint16(b[off+4:], rec)
		b[off+6] = byte(len(name))
		b[off+7] = 1
		copy(b[off+8:], name)
	}
	put(0, 2, 12, ".")
	put(12, 2, 12, "..")
	put(24, 12, 20, "hello.txt")
	put(44, 0, 20, "deleted")
	put(64, 13, 1024-64-12, "last")
	put(1024-12, 0, 12, "") // metadata_csum tail: inode 0, type 0xDE
	b[1024-12+7] = 0xDE
	got, err := parseDirBlock(b, true, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (dirent{"hello.txt", 12}) || got[1] != (dirent{"last", 13}) {
		t.Errorf("entries %+v", got)
	}
	for name, mutate := range map[string]func([]byte){
		"rec past block": func(b []byte) { le.PutUint16(b[64+4:], 2000) },
		"rec too small":  func(b []byte) { le.PutUint16(b[24+4:], 4) },
		"name past rec":  func(b []byte) { b[24+6] = 200 },
		"inode too big":  func(b []byte) { le.PutUint32(b[24:], 1000) },
		"unaligned rec":  func(b []byte) { le.PutUint16(b[24+4:], 21) },
	} {
		c := append([]byte(nil), b...)
		mutate(c)
		if _, err := parseDirBlock(c, true, 100); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An inode by hand ("Index Nodes").
func TestParseInode(t *testing.T) {
	le := binary.LittleEndian
	b := make([]byte, 256)
	le.PutUint16(b[0x00:], 0xA1FF) // symlink 0777
	le.PutUint16(b[0x02:], 1000)
	le.PutUint32(b[0x04:], 9)
	le.PutUint32(b[0x10:], 1700000000)
	le.PutUint16(b[0x18:], 100)
	le.PutUint16(b[0x1A:], 1)
	copy(b[0x28:], "hello.txt")
	le.PutUint16(b[0x78:], 2) // uid high
	le.PutUint16(b[0x80:], 32)
	le.PutUint32(b[0x88:], 5<<2|1) // mtime_extra: 5 ns, epoch bit 1
	in, err := parseInode(b, 12)
	if err != nil {
		t.Fatal(err)
	}
	if in.UID != 2<<16|1000 || in.GID != 100 || in.Size != 9 || in.Links != 1 {
		t.Errorf("inode %+v", in)
	}
	if want := time.Unix(1700000000+1<<32, 5).UTC(); !in.Mtime.Equal(want) {
		t.Errorf("mtime %v, want %v", in.Mtime, want)
	}
	if in.fileMode() != fs.ModeSymlink|0o777 {
		t.Errorf("mode %v", in.fileMode())
	}
	var f FS
	if l, err := f.readLink(in); l != "hello.txt" || err != nil {
		t.Errorf("fast symlink %q %v", l, err)
	}
	le.PutUint16(b[0x80:], 200) // extra size past the record
	if _, err := parseInode(b, 12); !errors.Is(err, ErrCorrupt) {
		t.Errorf("extra size: %v", err)
	}
}

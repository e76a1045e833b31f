package block

import (
	"io"
	"io/fs"
)

// DirPager hands out a directory's entries the way fs.ReadDirFile.ReadDir
// must: loaded on the first call, then n at a time until io.EOF (or all
// that are left when n <= 0). The filesystems' open directories embed it.
type DirPager struct {
	entries []fs.DirEntry
	loaded  bool
}

// ReadDir implements fs.ReadDirFile.ReadDir's paging over the entries load
// returns (called once).
func (p *DirPager) ReadDir(n int, load func() ([]fs.DirEntry, error)) ([]fs.DirEntry, error) {
	if !p.loaded {
		es, err := load()
		if err != nil {
			return nil, err
		}
		p.entries, p.loaded = es, true
	}
	if n <= 0 {
		es := p.entries
		p.entries = nil
		return es, nil
	}
	if len(p.entries) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(p.entries))
	es := p.entries[:k]
	p.entries = p.entries[k:]
	return es, nil
}

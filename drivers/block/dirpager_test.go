package block

import (
	"errors"
	"io"
	"io/fs"
	"testing"
	"testing/fstest"
)

func TestDirPager(t *testing.T) {
	fsys := fstest.MapFS{"a": {}, "b": {}, "c": {}, "d": {}, "e": {}}
	all, err := fs.ReadDir(fsys, ".")
	if err != nil || len(all) != 5 {
		t.Fatal(all, err)
	}
	loads := 0
	load := func() ([]fs.DirEntry, error) { loads++; return append([]fs.DirEntry(nil), all...), nil }

	var p DirPager
	var names []string
	for {
		es, err := p.ReadDir(2, load)
		if err == io.EOF {
			if len(es) != 0 {
				t.Errorf("entries with io.EOF: %v", es)
			}
			break
		}
		if err != nil || len(es) == 0 || len(es) > 2 {
			t.Fatalf("ReadDir(2) = %v, %v", es, err)
		}
		for _, e := range es {
			names = append(names, e.Name())
		}
	}
	if got := len(names); got != 5 || names[0] != "a" || names[4] != "e" || loads != 1 {
		t.Errorf("paged %v with %d loads, want a..e with 1", names, loads)
	}
	if es, err := p.ReadDir(-1, load); err != nil || len(es) != 0 {
		t.Errorf("ReadDir(-1) at the end = %v, %v; want nothing, nil", es, err)
	}

	var q DirPager
	if es, err := q.ReadDir(0, load); err != nil || len(es) != 5 {
		t.Errorf("ReadDir(0) = %d entries, %v; want all 5", len(es), err)
	}
	bad := errors.New("corrupt directory")
	var r DirPager
	if _, err := r.ReadDir(1, func() ([]fs.DirEntry, error) { return nil, bad }); !errors.Is(err, bad) {
		t.Errorf("load error: %v", err)
	}
}

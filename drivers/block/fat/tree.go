package fat

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf16"
)

// Tree is the content of a volume to build: directories and files by
// slash-separated path. The zero value is an empty tree.
type Tree struct {
	root node
}

type node struct {
	name     string
	dir      bool
	data     []byte
	children []*node

	// Assigned while building.
	parent   *node
	cluster  uint32
	clusters int64
	short    [11]byte
	lfn      bool
}

// ErrName reports a name FAT cannot store.
var ErrName = errors.New("fat: invalid file name")

// forbidden are the characters long names may not contain (spec "Long
// File Name Implementation", besides control characters).
const forbidden = `"*/:<>?\|`

func checkName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrName, name)
	}
	if len(utf16.Encode([]rune(name))) > maxNameLen {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrName, name, maxNameLen)
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(forbidden, r) {
			return fmt.Errorf("%w: %q contains %q", ErrName, name, r)
		}
	}
	if strings.TrimRight(name, ". ") != name {
		return fmt.Errorf("%w: %q ends in a dot or space", ErrName, name)
	}
	return nil
}

// lookup finds or creates the directory at p.
func (t *Tree) lookup(p string, create bool) (*node, error) {
	n := &t.root
	if p == "." || p == "" {
		return n, nil
	}
	for _, el := range strings.Split(p, "/") {
		var next *node
		for _, c := range n.children {
			if strings.EqualFold(c.name, el) {
				next = c
				break
			}
		}
		if next == nil {
			if !create {
				return nil, fs.ErrNotExist
			}
			if err := checkName(el); err != nil {
				return nil, err
			}
			next = &node{name: el, dir: true}
			n.children = append(n.children, next)
		}
		if !next.dir {
			return nil, fmt.Errorf("fat: %s: %s is a file", p, next.name)
		}
		n = next
	}
	return n, nil
}

// Mkdir adds the directory p and its parents.
func (t *Tree) Mkdir(p string) error {
	p, err := clean(p)
	if err != nil {
		return err
	}
	_, err = t.lookup(p, true)
	return err
}

// AddFile adds a file at p (parents are created); data is not copied.
// FAT names compare without regard to case, so "A.TXT" and "a.txt" clash.
func (t *Tree) AddFile(p string, data []byte) error {
	p, err := clean(p)
	if err != nil {
		return err
	}
	if p == "." {
		return fmt.Errorf("%w: empty file path", ErrName)
	}
	if int64(len(data)) > 0xFFFFFFFF {
		return fmt.Errorf("fat: %s is %d bytes; FAT files are below 4 GiB", p, len(data))
	}
	dir, base := path.Split(p)
	if err := checkName(base); err != nil {
		return err
	}
	d, err := t.lookup(strings.TrimSuffix(dir, "/"), true)
	if err != nil {
		return err
	}
	for _, c := range d.children {
		if strings.EqualFold(c.name, base) {
			return fmt.Errorf("fat: %s already exists (FAT names ignore case)", p)
		}
	}
	d.children = append(d.children, &node{name: base, data: data})
	return nil
}

func clean(p string) (string, error) {
	p = path.Clean("/" + strings.ReplaceAll(p, `\`, "/"))
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}

// AddFS copies every directory and regular file of fsys into the tree.
// Anything else (a symlink, a device) is an error: FAT cannot hold it and
// dropping it silently would surprise.
func (t *Tree) AddFS(fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case p == ".":
			return nil
		case d.IsDir():
			return t.Mkdir(p)
		case d.Type().IsRegular():
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			return t.AddFile(p, data)
		default:
			return fmt.Errorf("fat: %s is a %v; only regular files and directories fit on FAT", p, d.Type())
		}
	})
}

// sortChildren orders every directory by name so the volume does not
// depend on the order files were added.
func sortChildren(n *node) {
	slices.SortFunc(n.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	for _, c := range n.children {
		if c.dir {
			sortChildren(c)
		}
	}
}

// Bytes estimates the space the tree takes on a volume with 4 KiB
// clusters: file data rounded up to clusters plus one cluster per entry
// for directories.
func (t *Tree) Bytes() int64 {
	var walk func(n *node) int64
	walk = func(n *node) int64 {
		sum := int64(4096)
		for _, c := range n.children {
			if c.dir {
				sum += walk(c)
			} else {
				sum += (int64(len(c.data)) + 4095) &^ 4095
			}
		}
		return sum
	}
	return walk(&t.root)
}

package outbox

import (
	"errors"
	"io/fs"
	"sort"
)

// WithMigrations returns service's migrations plus the outbox's as one FS, for
// app.OpenDB or postgres.Migrate, which take one. Names in service win a clash, but the
// outbox's all start with "outbox_" and a service's with a number.
func WithMigrations(service fs.FS) fs.FS { return union{service, Migrations()} }

// union is a flat FS made of several: Open finds a name in the first that has it, and
// the root directory lists them all.
type union []fs.FS

func (u union) Open(name string) (fs.File, error) {
	if name == "." {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("the union lists its root only through ReadDir")}
	}
	for _, f := range u {
		file, err := f.Open(name)
		if err == nil {
			return file, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (u union) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	seen := map[string]bool{}
	var all []fs.DirEntry
	for _, f := range u {
		entries, err := fs.ReadDir(f, ".")
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !seen[e.Name()] {
				seen[e.Name()] = true
				all = append(all, e)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name() < all[j].Name() })
	return all, nil
}

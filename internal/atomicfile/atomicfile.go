// Package atomicfile writes files that survive a crash: each write reaches
// the disk before it returns, and a replaced file is the old one or the new
// one, never a part of either.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteSynced writes data to path and fsyncs it. On error the file is
// removed: a part of it is no use to anyone.
func WriteSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Replace replaces path with data: a temp file beside it, fsynced, renamed
// over it, and the directory fsynced, so that the rename reaches the disk
// too. A reader, or a crash, sees the old file or the new one.
func Replace(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	tmp := f.Name()
	_ = f.Close()
	if err := WriteSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", filepath.Base(path), err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync the directory of %s: %w", filepath.Base(path), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync the directory of %s: %w", filepath.Base(path), err)
	}
	return nil
}

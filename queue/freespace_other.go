//go:build !linux

package queue

// freeSpace is not known here: Enqueue does not keep space free.
func freeSpace(dir string) (int64, bool) { return 0, false }

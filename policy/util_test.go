package policy

import "os"

func osWriteFile(p string, d []byte) error { return os.WriteFile(p, d, 0o600) }

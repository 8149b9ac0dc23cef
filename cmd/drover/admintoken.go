package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"drover/configs"
)

// minAdminTokenLen is the shortest token file accepted: 22 characters of
// base64 hold 128 bits.
const minAdminTokenLen = 22

// adminTokenPath is the file that holds the admin API's token when the
// configuration gives none: admin-token in the data directory.
func adminTokenPath(cfg *configs.Config) string {
	return filepath.Join(cfg.DataDir, "admin-token")
}

// serveAdminToken is the token that `drover serve` requires of the admin
// API: http.admin_token, else the one in adminTokenPath, made at the first
// start (256 random bits, URL-safe base64) and written atomically with
// mode 0600. It is never logged. It is called once the spool is open, so
// that a second server on the same data directory, which cannot open it,
// cannot replace the file under the first.
func serveAdminToken(cfg *configs.Config, log *slog.Logger) (string, error) {
	if cfg.HTTP.AdminToken != "" {
		return cfg.HTTP.AdminToken, nil
	}
	path := adminTokenPath(cfg)
	tok, err := readAdminToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return "", fmt.Errorf("admin token: %w", err)
		}
		return tok, nil
	}
	raw := make([]byte, 32)
	rand.Read(raw) // never fails (crypto/rand)
	tok = base64.RawURLEncoding.EncodeToString(raw)
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	log.Info("admin API token made; drover queue ... reads it from its file", "file", path)
	return tok, nil
}

// readAdminToken reads a token file: one line, at least minAdminTokenLen
// characters.
func readAdminToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < minAdminTokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%s: not one line of at least %d characters; remove it and restart drover serve to make a new one", path, minAdminTokenLen)
	}
	return tok, nil
}

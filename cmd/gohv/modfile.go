package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modfileArgs returns the go build flags that build against a private copy
// of the user's go.mod and go.sum, which the go command may complete with
// the requirements the overlay's import brings in (a plain program's go.mod
// lists gohv but not gohv's own dependencies). The user's files are never
// written. In workspace mode (go.work), where -modfile is not allowed, it
// returns no flags.
func modfileArgs(ctx context.Context, gobin string, env []string, work string) ([]string, error) {
	cmd := exec.CommandContext(ctx, gobin, "env", "GOMOD", "GOWORK")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	gomod, gowork := strings.TrimSpace(lines[0]), ""
	if len(lines) > 1 {
		gowork = strings.TrimSpace(lines[1])
	}
	if gowork != "" && gowork != "off" {
		return nil, nil
	}
	if gomod == "" || gomod == os.DevNull {
		return nil, errors.New("not inside a Go module: create one that requires gohv (go mod init example.com/app && go get github.com/gohv/gohv)")
	}
	dir := filepath.Join(work, "mod")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mod := filepath.Join(dir, "go.mod")
	if err := copyFile(gomod, mod); err != nil {
		return nil, err
	}
	sum := strings.TrimSuffix(gomod, ".mod") + ".sum"
	if err := copyFile(sum, filepath.Join(dir, "go.sum")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return []string{"-modfile", mod, "-mod=mod"}, nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

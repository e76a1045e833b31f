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

// gohvModule is gohv's module path.
const gohvModule = "github.com/gohv/gohv"

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
	if gomod == "" || gomod == os.DevNull {
		return nil, errNoModule
	}
	if gowork != "" && gowork != "off" {
		return nil, nil
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

var errNoModule = errors.New("not inside a Go module: create one that requires gohv (go mod init example.com/app && go get -tool github.com/gohv/gohv/cmd/gohv)")

// requireGohv checks, with the go command on PATH, that the module in the
// current directory requires gohv: without gohv in the build list the go
// command would look it up on the network to satisfy the overlay's import.
func requireGohv(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errNoModule
	}
	if err := exec.CommandContext(ctx, "go", "list", "-m", gohvModule).Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("your module (%s) does not require %s, which gohv adds to the program: run `go get -tool %s/cmd/gohv` (or `go get %s`) in it", gomod, gohvModule, gohvModule, gohvModule)
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// Package tamago finds the TamaGo compiler (tamago-go) that builds gohv
// kernels, the way tools/scripts/tamago.sh and tamago's own wrapper
// (github.com/usbarmory/tamago/cmd/tamago) do: TAMAGO names its bin/go, or
// it lives in the user cache directory under tamago-go/tamago-go<version>,
// where <version> follows the tamago module version the program builds
// with. It never downloads anything: when the compiler is missing, the error
// says how to install it.
//
// It owns the lookup and the environment a build runs with; it must not
// build anything itself (cmd/gohv does).
package tamago

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Module is the tamago module path, whose version selects the compiler.
const Module = "github.com/usbarmory/tamago"

// GohvModuleVersion is the tamago version gohv's own go.mod requires (a
// test keeps them equal). Find falls back to it when neither the program's
// module nor this binary's build information names one, as in a gohv
// installed with go install.
const GohvModuleVersion = "v1.26.0"

// ErrNotFound is wrapped by the error Find returns when no compiler is
// installed.
var ErrNotFound = errors.New("TamaGo compiler not found")

// Compiler is a usable tamago-go.
type Compiler struct {
	// Go is the path of its go command.
	Go string
	// Root is its GOROOT ("" when it came from TAMAGO and the layout is
	// not the usual bin/go under a root).
	Root string
	// Version is the tamago-go release, e.g. "tamago-go1.26.0" ("" when
	// it came from TAMAGO).
	Version string
}

// Env returns environ with what running c needs: GOROOT and PATH the way
// tamago's wrapper sets them, GOOS/GOARCH/GOOSPKG for a bare-metal amd64
// build.
func (c Compiler) Env(environ []string) []string {
	env := append([]string(nil), environ...)
	if c.Root != "" {
		path := filepath.Join(c.Root, "bin")
		for _, kv := range environ {
			if p, ok := strings.CutPrefix(kv, "PATH="); ok && p != "" {
				path += string(filepath.ListSeparator) + p
			}
		}
		env = append(env, "GOROOT="+c.Root, "PATH="+path)
	}
	return append(env, "GOOS=tamago", "GOARCH=amd64", "GOOSPKG="+Module)
}

// Lookup says where to look. The zero value looks in the real environment.
type Lookup struct {
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// CacheDir is the user cache directory (default os.UserCacheDir).
	CacheDir string
	// ModuleVersion is the tamago module version the program builds with
	// (e.g. "v1.26.0"); empty means ask the go command in Dir, then fall
	// back to the version this binary was built with.
	ModuleVersion string
	// Dir is the directory of the program being built.
	Dir string
}

// Find returns the compiler, or an error wrapping ErrNotFound that says how
// to install it.
func (l Lookup) Find() (Compiler, error) {
	getenv := l.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if t := getenv("TAMAGO"); t != "" {
		if !isExecutable(t) {
			return Compiler{}, fmt.Errorf("%w: TAMAGO=%s is not an executable file; point it at a tamago-go bin/go", ErrNotFound, t)
		}
		c := Compiler{Go: t}
		if filepath.Base(filepath.Dir(t)) == "bin" && filepath.Base(t) == "go"+exe() {
			c.Root = filepath.Dir(filepath.Dir(t))
		}
		return c, nil
	}
	mv := l.ModuleVersion
	if mv == "" {
		mv = moduleVersion(l.Dir)
	}
	version, err := Release(mv)
	if err != nil {
		return Compiler{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	cache := l.CacheDir
	if cache == "" {
		if cache, err = os.UserCacheDir(); err != nil {
			return Compiler{}, fmt.Errorf("%w: no user cache directory (%v); set TAMAGO=/path/to/tamago-go/bin/go", ErrNotFound, err)
		}
	}
	root := filepath.Join(cache, "tamago-go", version)
	gobin := filepath.Join(root, "bin", "go"+exe())
	if !isExecutable(gobin) {
		return Compiler{}, fmt.Errorf("%w: %s is missing.\n%s", ErrNotFound, gobin, InstallHint(root, version))
	}
	return Compiler{Go: gobin, Root: root, Version: version}, nil
}

// InstallHint says how to put tamago-go release version at root.
func InstallHint(root, version string) string {
	mv := "v" + strings.TrimPrefix(version, "tamago-go")
	return fmt.Sprintf(`Install %[2]s once (cloned from GitHub and built into %[1]s) with TamaGo's installer:
  go run %[3]s/cmd/tamago@%[4]s version
or, in your module, as a tool:
  go get -tool %[3]s/cmd/tamago@%[4]s && go tool tamago version
or by hand:
  git clone --depth=1 --branch=%[2]s https://github.com/usbarmory/tamago-go %[1]s
  cd %[1]s/src && ./make.bash
or point TAMAGO at an existing tamago-go: TAMAGO=/path/to/tamago-go/bin/go`, root, version, Module, mv)
}

// Release maps a tamago module version to the tamago-go release it needs,
// as tamago's wrapper does: "v1.26.0" → "tamago-go1.26.0"; a pseudo-version
// after tag v1.25.6 ("v1.25.7-0.2026...") → "tamago-go1.25.6".
func Release(moduleVersion string) (string, error) {
	v := moduleVersion
	if !strings.HasPrefix(v, "v1.") {
		return "", fmt.Errorf("unsupported tamago module version %q", moduleVersion)
	}
	if base, _, ok := strings.Cut(v, "-"); ok {
		parts := strings.SplitN(base, ".", 3)
		if len(parts) != 3 {
			return "", fmt.Errorf("unsupported tamago module version %q", moduleVersion)
		}
		patch, err := strconv.Atoi(parts[2])
		if err != nil || patch == 0 {
			return "", fmt.Errorf("unsupported tamago module version %q", moduleVersion)
		}
		parts[2] = strconv.Itoa(patch - 1)
		v = strings.Join(parts, ".")
	}
	return "tamago-go" + strings.TrimPrefix(v, "v"), nil
}

// moduleVersion asks the go command for the tamago version in dir's build
// list, else returns the one this binary was built with, else
// GohvModuleVersion.
func moduleVersion(dir string) string {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", Module)
	cmd.Dir = dir
	if out, err := cmd.Output(); err == nil {
		if v := strings.TrimSpace(string(out)); v != "" {
			return v
		}
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == Module {
				if d.Replace != nil && d.Replace.Version != "" {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return GohvModuleVersion
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && (runtime.GOOS == "windows" || st.Mode()&0o111 != 0)
}

func exe() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

package tamago

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRelease(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"v1.26.0", "tamago-go1.26.0", true},
		{"v1.25.7-0.20260130090423-5d846371fd71+dirty", "tamago-go1.25.6", true},
		{"v1.25.0-0.2026", "", false}, // no tag to roll back to
		{"v2.0.0", "", false},
		{"", "", false},
	} {
		got, err := Release(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Release(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func fakeGo(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFind(t *testing.T) {
	cache := t.TempDir()
	noEnv := func(string) string { return "" }

	_, err := Lookup{Getenv: noEnv, CacheDir: cache, ModuleVersion: "v1.26.0"}.Find()
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing compiler: err = %v, want ErrNotFound", err)
	}
	want := filepath.Join(cache, "tamago-go", "tamago-go1.26.0", "bin", "go")
	for _, s := range []string{want, "git clone --depth=1 --branch=tamago-go1.26.0", "TAMAGO="} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}

	fakeGo(t, want)
	c, err := Lookup{Getenv: noEnv, CacheDir: cache, ModuleVersion: "v1.26.0"}.Find()
	if err != nil {
		t.Fatal(err)
	}
	if c.Go != want || c.Root != filepath.Join(cache, "tamago-go", "tamago-go1.26.0") || c.Version != "tamago-go1.26.0" {
		t.Errorf("Find = %+v", c)
	}
	env := c.Env([]string{"PATH=/usr/bin", "HOME=/h"})
	for _, kv := range []string{"GOROOT=" + c.Root, "PATH=" + filepath.Join(c.Root, "bin") + ":/usr/bin",
		"GOOS=tamago", "GOARCH=amd64", "GOOSPKG=github.com/usbarmory/tamago", "HOME=/h"} {
		if !slices.Contains(env, kv) {
			t.Errorf("Env lacks %q: %q", kv, env)
		}
	}
}

func TestFindTAMAGO(t *testing.T) {
	dir := t.TempDir()
	gobin := filepath.Join(dir, "tg", "bin", "go")
	fakeGo(t, gobin)
	env := func(v string) string {
		if v == "TAMAGO" {
			return gobin
		}
		return ""
	}
	c, err := Lookup{Getenv: env, CacheDir: dir}.Find()
	if err != nil || c.Go != gobin || c.Root != filepath.Join(dir, "tg") {
		t.Fatalf("Find = %+v, %v", c, err)
	}
	bad := func(string) string { return filepath.Join(dir, "nope") }
	if _, err := (Lookup{Getenv: bad, CacheDir: dir}).Find(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("TAMAGO pointing nowhere: %v", err)
	}
}

func TestGohvModuleVersion(t *testing.T) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", Module)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(string(out)); v != GohvModuleVersion {
		t.Errorf("go.mod requires tamago %s; update GohvModuleVersion (%s)", v, GohvModuleVersion)
	}
}

//go:build !tamago

package boot

import (
	"errors"
	"time"

	"github.com/gohv/gohv/hv"
)

// Hosted builds (tests, tools, `go vet ./...`) have no board: these let
// programs that import boot build and run as ordinary processes.

// ErrNotBareMetal is returned by the board's functions outside GOOS=tamago.
var ErrNotBareMetal = errors.New("boot: not running on the gohv board (built without GOOS=tamago)")

// Describe returns an empty Machine outside the board.
func Describe() Machine { return Machine{} }

// Platform returns ErrNotBareMetal outside the board; use tools/hvsim for a
// simulated host.
func Platform() (hv.Platform, error) { return nil, ErrNotBareMetal }

// PowerOff returns ErrNotBareMetal outside the board.
func PowerOff() error { return ErrNotBareMetal }

// Reboot returns ErrNotBareMetal outside the board.
func Reboot() error { return ErrNotBareMetal }

// SetTime does nothing outside the board: the host system owns the clock.
func SetTime(int64) bool { return false }

// RTC returns ErrNotBareMetal outside the board: the host system owns the
// clock.
func RTC() (time.Time, error) { return time.Time{}, ErrNotBareMetal }

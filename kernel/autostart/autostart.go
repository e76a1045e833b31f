// Package autostart gives a plain Go program the gohv kernel's start-up
// and shutdown paths without changing its code: `gohv build` adds a blank
// import of it to the program's main package. Its init starts the kernel
// (kernel.Start: VMBus, the standard drivers) on a goroutine of its own
// while main runs; when main returns (or the program calls os.Exit or
// panics) the board's exit hook runs the kernel's shutdown path (flush the
// disks, close the drivers, unload VMBus) before the machine powers off;
// and when the host asks the VM to shut down, the program exits with
// status 0 through that same path.
//
// Programs that want the shutdown request as a context, a grace period or
// access to the devices call kernel.Run instead. Hosted (not GOOS=tamago)
// the package does nothing.
package autostart

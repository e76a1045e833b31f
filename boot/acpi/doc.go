// Package acpi parses the ACPI tables a gohv kernel needs at start-up: the
// RSDP, the RSDT/XSDT, the MADT (processors, I/O APICs), the FADT (PM timer,
// PM1 control, reset register) and the \_S5 sleep type in the DSDT, and
// turns them into the power-off and reset actions the board performs.
//
// Everything here is pure: tables are read through a PhysReader, so the same
// code runs on bare metal (identity-mapped memory, boot/ glue) and in hosted
// tests fed table bytes captured from QEMU's SeaBIOS and OVMF (testdata/).
// Firmware tables are not trusted blindly: lengths, checksums and entry
// sizes are validated and a malformed table is an error, never a panic.
// This package performs no I/O and knows nothing of Hyper-V.
package acpi

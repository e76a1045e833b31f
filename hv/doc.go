// Package hv is gohv's hypervisor layer: the facts of the Hyper-V Top-Level
// Functional Specification (CPUID leaves, synthetic MSRs, hypercall codes and
// status codes, SynIC page layouts, the reference TSC page), detection of
// Hyper-V from CPUID values, and the seam (Platform, Memory, Hypercalls,
// SynIC) through which every upper layer reaches the machine.
//
// hv owns no state and executes no privileged instruction: the bare-metal
// implementation of the seam lives in boot/ and the simulated one in
// tools/hvsim. hv imports nothing from gohv.
package hv

//go:build tamago

package boot

// Defined in cpu_amd64.s.
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
func rdmsr(msr uint32) uint64
func wrmsr(msr uint32, val uint64)
func rdtsc() uint64
func rdtscOrdered() uint64
func inb(port uint16) uint8
func outb(port uint16, val uint8)
func inw(port uint16) uint16
func outw(port uint16, val uint16)
func inl(port uint16) uint32
func outl(port uint16, val uint32)
func reloadCR3()
func haltForever()
func hypercall(page uintptr, control, input, output uint64) uint64

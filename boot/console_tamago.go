//go:build tamago

package boot

import (
	_ "unsafe"

	"github.com/usbarmory/tamago/soc/intel/uart"
)

// UART0 is COM1, the console on QEMU (-serial stdio), Hyper-V (COM1 named
// pipe) and Azure (serial console).
//
// DTR and RTS stay raised as consoleSetup left them: tamago's UART.Init
// rewrites MCR and would otherwise drop them.
var UART0 = &uart.UART{Index: 1, Base: COM1, DTR: true, RTS: true}

const consoleBaud = 115200

// consoleSetup programs COM1 for 115200 8N1 (uartInit). It runs before the
// runtime (from early) and allocates nothing.
//
//go:nosplit
func consoleSetup() {
	w, err := uartInit(COM1, consoleBaud)
	if err != nil {
		return
	}
	for _, x := range w {
		outb(x.Port, x.Value)
	}
	outb(COM1+uartMCR, MCRDTRRTSOut2)
}

// earlyPrint writes s to COM1 by polling, usable before the runtime.
//
//go:nosplit
func earlyPrint(s string) {
	for i := 0; i < len(s); i++ {
		for inb(COM1+uartLSR)&LSRTHREmpty == 0 {
		}
		outb(COM1+uartTHR, s[i])
	}
}

//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	UART0.Tx(c)
}

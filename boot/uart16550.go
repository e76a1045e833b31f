package boot

import "errors"

// 16550 programming (PC16550D datasheet; COM1 at I/O port 0x3F8). Hyper-V
// exposes COM1/COM2 as named pipes and QEMU ignores the rate, but a real
// 16550 (and Azure's serial console) needs the line set, and the loaders
// leave it as the firmware did, so the board programs 115200 8N1.
const (
	COM1 = 0x3F8

	uartTHR = 0 // transmit holding (DLAB 0); divisor low (DLAB 1)
	uartIER = 1 // interrupt enable (DLAB 0); divisor high (DLAB 1)
	uartFCR = 2
	uartLCR = 3
	uartMCR = 4
	uartLSR = 5

	// UARTClock is the divisor base: 1.8432 MHz / 16.
	UARTClock = 115200
	// LCR8N1 is 8 data bits, no parity, 1 stop bit.
	LCR8N1 = 0x03
	// LCRDLAB selects the divisor latch.
	LCRDLAB = 0x80
	// FCREnable enables and clears both FIFOs.
	FCREnable = 0x07
	// MCRDTRRTSOut2 raises DTR, RTS and OUT2.
	MCRDTRRTSOut2 = 0x0B
	// LSRTHREmpty is set when the transmit holding register is empty.
	LSRTHREmpty = 0x20
)

// uartWrite is one port write of the 16550 set-up sequence.
type uartWrite struct {
	Port  uint16
	Value uint8
}

var errBaud = errors.New("boot: baud rate not reachable from the 115200 divisor base")

// uartInit returns the writes that program the 16550 at base for baud 8N1,
// FIFOs on, interrupts off.
func uartInit(base uint16, baud uint32) ([6]uartWrite, error) {
	if baud == 0 || baud > UARTClock || UARTClock%baud != 0 || UARTClock/baud > 0xFFFF {
		return [6]uartWrite{}, errBaud
	}
	div := UARTClock / baud
	return [6]uartWrite{
		{base + uartIER, 0},
		{base + uartLCR, LCRDLAB},
		{base + uartTHR, uint8(div)},
		{base + uartIER, uint8(div >> 8)},
		{base + uartLCR, LCR8N1},
		{base + uartFCR, FCREnable},
	}, nil
}

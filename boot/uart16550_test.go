package boot

import "testing"

func TestUARTInit(t *testing.T) {
	w, err := uartInit(COM1, 115200)
	if err != nil {
		t.Fatal(err)
	}
	// PC16550D: IER off, DLAB on, divisor 1 (DLL, DLM), 8N1 with DLAB off,
	// FIFOs enabled and cleared.
	want := [6]uartWrite{{0x3f9, 0}, {0x3fb, 0x80}, {0x3f8, 1}, {0x3f9, 0}, {0x3fb, 0x03}, {0x3fa, 0x07}}
	if w != want {
		t.Errorf("115200: %v, want %v", w, want)
	}
	if w, _ := uartInit(0x2f8, 9600); w[2] != (uartWrite{0x2f8, 12}) || w[3] != (uartWrite{0x2f9, 0}) {
		t.Errorf("9600 divisor writes %v %v", w[2], w[3])
	}
	if w, _ := uartInit(COM1, 2); w[2].Value != 0x00 || w[3].Value != 0xe1 {
		t.Errorf("2 baud: divisor 57600 = 0xe100; got %v", w)
	}
	for _, baud := range []uint32{0, 1, 7, 230400} { // 1: divisor 0x1c200 does not fit
		if _, err := uartInit(COM1, baud); err == nil {
			t.Errorf("baud %d accepted", baud)
		}
	}
}

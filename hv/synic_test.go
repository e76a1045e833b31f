package hv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
)

func TestSynICConstants(t *testing.T) {
	// Literal from docs/hyperv-protocol.md §2.1, §2.2, §2.5, §1.5.
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"SINTs", SINTCount, 16},
		{"slot size", MessageSlotSize, 256},
		{"header size", MessageHeaderSize, 16},
		{"payload", MaxMessagePayload, 240},
		{"flag area", EventFlagAreaSize, 256},
		{"flags per SINT", EventFlagsPerSINT, 2048},
		{"VMBus SINT", int(VMBusSINT), 2},
		{"type none", MessageTypeNone, 0},
		{"type VMBus", MessageTypeVMBus, 1},
		{"type timer", MessageTypeTimerExpired, 0x80000010},
		{"pending flag", MessageFlagPending, 1},
		{"slot 0", SlotOffset(0), 0},
		{"slot 2", SlotOffset(2), 512},
		{"slot 15", SlotOffset(15), 3840},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestCopyMessageLiteralSlot(t *testing.T) {
	page := newPage()
	slot := []byte{
		0x01, 0x00, 0x00, 0x00, // @0 type 1 (VMBus)
		0x05,       // @4 payload size 5
		0x01,       // @5 flags: message pending
		0xFF, 0xFF, // @6 reserved (must not leak into size or flags)
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // @8 sender
		'h', 'e', 'l', 'l', 'o', 'X', // @16 payload (X is beyond size)
	}
	copy(page[512:], slot)

	var dst [MaxMessagePayload]byte
	typ, size, err := CopyMessage(page, VMBusSINT, &dst)
	if err != nil || typ != 1 || size != 5 || string(dst[:size]) != "hello" || dst[5] != 0 {
		t.Fatalf("CopyMessage = %d, %d, %v, %q", typ, size, err, dst[:6])
	}
	if got := LoadMessageType(page, VMBusSINT); got != 1 {
		t.Errorf("LoadMessageType = %d", got)
	}
	if got := LoadMessageSender(page, VMBusSINT); got != 0x0102030405060708 {
		t.Errorf("LoadMessageSender = %#x", got)
	}
	if !MessagePending(page, VMBusSINT) {
		t.Errorf("MessagePending = false with flags byte 0x01")
	}
	if MessagePending(page, 1) || LoadMessageType(page, 3) != 0 {
		t.Errorf("neighbour slots read wrong")
	}
	if !ReleaseSlot(page, VMBusSINT) {
		t.Errorf("ReleaseSlot: eom = false")
	}
	if !bytes.Equal(page[512:516], []byte{0, 0, 0, 0}) || !bytes.Equal(page[516:520], slot[4:8]) {
		t.Errorf("after release: % x", page[512:520])
	}
	if typ, size, err := CopyMessage(page, VMBusSINT, &dst); typ != 0 || size != 0 || err != nil {
		t.Errorf("empty slot: %d %d %v", typ, size, err)
	}

	// Flags clear but size 0xF0 and reserved set: pending must read false.
	copy(page[512:], []byte{0x10, 0x00, 0x00, 0x80, 0xF0, 0x00, 0xFF, 0xFF})
	if MessagePending(page, VMBusSINT) {
		t.Errorf("MessagePending = true with flags byte 0")
	}
	typ, size, err = CopyMessage(page, VMBusSINT, &dst)
	if err != nil || typ != 0x80000010 || size != 240 {
		t.Errorf("full slot: %#x %d %v", typ, size, err)
	}
}

func TestCopyMessageOversize(t *testing.T) {
	page := newPage()
	copy(page[512:], []byte{0x01, 0, 0, 0, 241, 0, 0, 0})
	var dst [MaxMessagePayload]byte
	typ, size, err := CopyMessage(page, VMBusSINT, &dst)
	if !errors.Is(err, ErrMessageSize) || typ != 1 || size != 0 {
		t.Errorf("CopyMessage = %d %d %v, want ErrMessageSize", typ, size, err)
	}
}

func TestDeliverMessageBytes(t *testing.T) {
	page := newPage()
	for i := range page {
		page[512+i%256] = 0xEE
	}
	clear(page[512:516]) // slot empty
	ok, err := DeliverMessage(page, VMBusSINT, 1, 0x0102030405060708, []byte{9, 8, 7}, true)
	if !ok || err != nil {
		t.Fatalf("DeliverMessage = %v, %v", ok, err)
	}
	want := make([]byte, 256)
	copy(want, []byte{
		0x01, 0x00, 0x00, 0x00,
		0x03, 0x01, 0x00, 0x00,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x09, 0x08, 0x07,
	})
	if !bytes.Equal(page[512:768], want) {
		t.Errorf("slot = % x\nwant   % x", page[512:540], want[:28])
	}

	// Busy slot: nothing changes except the pending flag.
	clear(page[512+5 : 512+6])
	before := bytes.Clone(page)
	ok, err = DeliverMessage(page, VMBusSINT, 1, 0, []byte{1}, false)
	if ok || err != nil {
		t.Fatalf("busy slot: DeliverMessage = %v, %v", ok, err)
	}
	before[512+5] = 0x01
	if !bytes.Equal(page, before) {
		t.Errorf("busy slot changed beyond the pending flag: % x", page[512:540])
	}
	for _, bad := range []struct {
		typ     uint32
		payload []byte
	}{{0, nil}, {1, make([]byte, 241)}} {
		if _, err := DeliverMessage(page, 3, bad.typ, 0, bad.payload, false); err == nil {
			t.Errorf("DeliverMessage(type %d, %d bytes) accepted", bad.typ, len(bad.payload))
		}
	}
}

func TestEventFlags(t *testing.T) {
	page := newPage()
	// Reference §2.2: flag k of SINT n is byte n*256 + k/8, bit k%8.
	if !SetEventFlag(page, VMBusSINT, 13) || page[512+1] != 0x20 {
		t.Fatalf("SetEventFlag(13): byte = %#x", page[513])
	}
	if SetEventFlag(page, VMBusSINT, 13) {
		t.Errorf("second SetEventFlag(13) reported newly set")
	}
	if !SetEventFlag(page, VMBusSINT, 2047) || page[512+255] != 0x80 {
		t.Errorf("SetEventFlag(2047): byte = %#x", page[767])
	}
	if !SetEventFlag(page, 0, 0) || page[0] != 0x01 {
		t.Errorf("SetEventFlag(sint 0, 0): byte = %#x", page[0])
	}
	if SetEventFlag(page, VMBusSINT, 2048) || SetEventFlag(page, VMBusSINT, -1) {
		t.Errorf("out-of-range flag set")
	}
	if page[768] != 0 || page[511] != 0 {
		t.Errorf("flag leaked into a neighbour area")
	}
	if TestAndClearEventFlag(page, VMBusSINT, 12) || TestAndClearEventFlag(page, VMBusSINT, 2048) {
		t.Errorf("clear flag reported set")
	}
	if !TestAndClearEventFlag(page, VMBusSINT, 13) || page[513] != 0 {
		t.Errorf("TestAndClearEventFlag(13) failed, byte %#x", page[513])
	}
	if TestAndClearEventFlag(page, VMBusSINT, 13) {
		t.Errorf("flag 13 cleared twice")
	}
	// Word 63 of SINT 2's area holds flags 2016..2047.
	if got := SwapEventFlagWord(page, VMBusSINT, 63); got != 0x80000000 || page[767] != 0 {
		t.Errorf("SwapEventFlagWord(63) = %#x", got)
	}
	if SwapEventFlagWord(page, VMBusSINT, 64) != 0 || SwapEventFlagWord(page, VMBusSINT, -1) != 0 {
		t.Errorf("out-of-range word")
	}
}

func TestTimerMessage(t *testing.T) {
	payload := []byte{
		0x03, 0x00, 0x00, 0x00, // @0 timer index
		0xFF, 0xFF, 0xFF, 0xFF, // @4 reserved
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // @8 expiration
		0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // @16 delivery
	}
	m, err := DecodeTimerMessage(payload)
	want := TimerMessage{TimerIndex: 3, ExpirationTime: 0x0102030405060708, DeliveryTime: 0x10}
	if err != nil || m != want {
		t.Fatalf("DecodeTimerMessage = %+v, %v", m, err)
	}
	out := make([]byte, 24)
	m.Encode(out)
	payload[4], payload[5], payload[6], payload[7] = 0, 0, 0, 0
	if !bytes.Equal(out, payload) {
		t.Errorf("Encode = % x", out)
	}
	if _, err := DecodeTimerMessage(payload[:23]); err == nil {
		t.Errorf("short payload accepted")
	}
	payload[0] = 4
	if _, err := DecodeTimerMessage(payload); err == nil {
		t.Errorf("timer index 4 accepted")
	}
}

// TestSlotConcurrent runs a host delivering messages and a guest consuming
// them with the EOM protocol of docs/hyperv-protocol.md §2.3; -race checks the accessors.
func TestSlotConcurrent(t *testing.T) {
	const n = 2000
	page := newPage()
	irq := make(chan struct{}, 1)
	eom := make(chan struct{}, 1)
	done := make(chan struct{})
	kick := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // host
		defer wg.Done()
		var payload [MaxMessagePayload]byte
		for i := range n {
			size := i % (MaxMessagePayload + 1)
			for j := range size {
				payload[j] = byte(i + j)
			}
			binary.LittleEndian.PutUint32(payload[:], uint32(i)) // harmless if size < 4
			for {
				ok, err := DeliverMessage(page, VMBusSINT, 1, uint64(i), payload[:size], false)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					kick(irq)
					break
				}
				select {
				case <-eom:
				case <-done:
					return
				}
			}
		}
	}()

	var dst [MaxMessagePayload]byte
	for i := 0; i < n; {
		<-irq
		for {
			typ, size, err := CopyMessage(page, VMBusSINT, &dst)
			if typ == 0 {
				break
			}
			sender := LoadMessageSender(page, VMBusSINT)
			if err != nil || size != i%(MaxMessagePayload+1) || sender != uint64(i) {
				t.Fatalf("message %d: size %d sender %d err %v", i, size, sender, err)
			}
			for j := 4; j < size; j++ {
				if dst[j] != byte(i+j) {
					t.Fatalf("message %d byte %d = %d", i, j, dst[j])
				}
			}
			i++
			if ReleaseSlot(page, VMBusSINT) {
				kick(eom)
			}
		}
	}
	close(done)
	wg.Wait()
}

func TestEventFlagsConcurrent(t *testing.T) {
	page := newPage()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 1; k < EventFlagsPerSINT; k++ {
			SetEventFlag(page, VMBusSINT, k)
		}
	}()
	seen := make([]bool, EventFlagsPerSINT)
	got := 0
	for got < EventFlagsPerSINT-1 {
		for w := range EventFlagWords {
			bits := SwapEventFlagWord(page, VMBusSINT, w)
			for b := range 32 {
				if bits&(1<<b) == 0 {
					continue
				}
				k := 32*w + b
				if seen[k] {
					t.Fatalf("flag %d seen twice", k)
				}
				seen[k] = true
				got++
			}
		}
	}
	wg.Wait()
	if seen[0] {
		t.Errorf("flag 0 seen")
	}
}

func TestSynICPageMisuse(t *testing.T) {
	for name, fn := range map[string]func(){
		"short page":   func() { LoadMessageType(newPage()[:4095], 0) },
		"misaligned":   func() { LoadMessageType(misalignedPage(), 0) },
		"SINT 16":      func() { LoadMessageType(newPage(), 16) },
		"flag SINT 16": func() { SetEventFlag(newPage(), 16, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// TestInterruptPathAllocs: the SynIC handler runs in interrupt context and
// must not allocate, even for a malformed slot.
func TestInterruptPathAllocs(t *testing.T) {
	page := newPage()
	flags := newPage()
	var dst [MaxMessagePayload]byte
	n := testing.AllocsPerRun(100, func() {
		copy(page[512:], []byte{1, 0, 0, 0, 100, 1})
		CopyMessage(page, VMBusSINT, &dst)
		ReleaseSlot(page, VMBusSINT)
		copy(page[512:], []byte{1, 0, 0, 0, 241, 0})
		if _, _, err := CopyMessage(page, VMBusSINT, &dst); err == nil {
			panic("oversize accepted")
		}
		SetEventFlag(flags, VMBusSINT, 7)
		TestAndClearEventFlag(flags, VMBusSINT, 7)
		SwapEventFlagWord(flags, VMBusSINT, 0)
	})
	if n != 0 {
		t.Errorf("allocs per run = %v, want 0", n)
	}
}

func BenchmarkCopyMessage(b *testing.B) {
	page := newPage()
	var dst [MaxMessagePayload]byte
	payload := make([]byte, 128)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		DeliverMessage(page, VMBusSINT, 1, 0, payload, false)
		CopyMessage(page, VMBusSINT, &dst)
		ReleaseSlot(page, VMBusSINT)
	}
}

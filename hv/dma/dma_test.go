package dma_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/hv/dma"
	"github.com/gohv/gohv/tools/hvsim"
)

// fakeMemory hands out pages with made-up PFNs and counts what is out.
type fakeMemory struct {
	mu      sync.Mutex
	next    uint64
	out     map[uint64]int // PFN → pages
	failAt  int            // fail the failAt-th allocation (1-based), 0: never
	allocs  int
	freeErr []string
}

func newFakeMemory() *fakeMemory { return &fakeMemory{next: 0x100, out: map[uint64]int{}} }

func (m *fakeMemory) AllocPages(n int) (hv.Pages, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allocs++
	if m.allocs == m.failAt {
		return hv.Pages{}, errors.New("out of pages")
	}
	p := hv.Pages{Mem: make([]byte, n*hv.PageSize), PFN: m.next}
	m.out[p.PFN] = n
	m.next += uint64(n) + 1
	return p, nil
}

func (m *fakeMemory) FreePages(p hv.Pages) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.out[p.PFN] != p.Count() {
		m.freeErr = append(m.freeErr, fmt.Sprintf("free of %d pages at %#x", p.Count(), p.PFN))
	}
	delete(m.out, p.PFN)
}

func (m *fakeMemory) pagesOut() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.out {
		n += c
	}
	return n
}

func TestPoolGeometry(t *testing.T) {
	mem := newFakeMemory()
	p, err := dma.NewPool(mem, 6000, 3) // 2 pages each
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 3 || mem.pagesOut() != 6 {
		t.Fatalf("Len %d, %d pages allocated; want 3 and 6", p.Len(), mem.pagesOut())
	}
	seen := map[int]bool{}
	for range 3 {
		b, ok := p.TryGet()
		if !ok {
			t.Fatal("TryGet failed with buffers free")
		}
		if len(b.Bytes()) != 6000 || cap(b.Bytes()) != 6000 || b.Pages().Count() != 2 || b.PFN(1) != b.PFN(0)+1 || b.Pages().PFN != b.PFN(0) {
			t.Errorf("buffer %d: %d bytes, %d pages, PFNs %#x %#x", b.Index(), len(b.Bytes()), b.Pages().Count(), b.PFN(0), b.PFN(1))
		}
		seen[b.Index()] = true
	}
	if len(seen) != 3 {
		t.Errorf("indices %v", seen)
	}
	if _, ok := p.TryGet(); ok {
		t.Error("TryGet succeeded with every buffer out")
	}
}

func TestPoolBadArguments(t *testing.T) {
	for _, c := range []struct{ size, count int }{{0, 1}, {1, 0}, {-1, 1}, {4096, -2}} {
		if _, err := dma.NewPool(newFakeMemory(), c.size, c.count); !errors.Is(err, dma.ErrBadSize) {
			t.Errorf("NewPool(%d, %d): %v, want ErrBadSize", c.size, c.count, err)
		}
	}
	mem := newFakeMemory()
	mem.failAt = 3
	if _, err := dma.NewPool(mem, 4096, 4); err == nil {
		t.Fatal("NewPool succeeded with the memory failing")
	}
	if n := mem.pagesOut(); n != 0 {
		t.Errorf("failed NewPool left %d pages allocated", n)
	}
}

// Get waits for a Put, and gives up with ctx.
func TestPoolGetWaits(t *testing.T) {
	p, err := dma.NewPool(newFakeMemory(), 4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := p.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get on an empty pool: %v, want the ctx error", err)
	}
	got := make(chan *dma.Buffer)
	go func() {
		b, err := p.Get(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	p.Put(b)
	if b2 := <-got; b2 != b {
		t.Fatal("waiting Get got another buffer")
	}
	p.Put(b)
}

// Close refuses while buffers are out, frees everything once they are
// back, and ends waiting Gets.
func TestPoolClose(t *testing.T) {
	mem := newFakeMemory()
	p, err := dma.NewPool(mem, 4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := p.TryGet()
	b2, _ := p.TryGet()
	waiting := make(chan error)
	go func() {
		_, err := p.Get(context.Background())
		waiting <- err
	}()
	if err := p.Close(); !errors.Is(err, dma.ErrInUse) {
		t.Fatalf("Close with 2 out: %v, want ErrInUse", err)
	}
	if err := <-waiting; !errors.Is(err, dma.ErrClosed) {
		t.Fatalf("waiting Get after Close: %v, want ErrClosed", err)
	}
	if mem.pagesOut() != 2 {
		t.Fatal("Close freed pages still in use")
	}
	p.Put(b1)
	if _, ok := p.TryGet(); ok {
		t.Fatal("TryGet on a closed pool")
	}
	p.Put(b2)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if mem.pagesOut() != 0 || len(mem.freeErr) != 0 {
		t.Fatalf("after Close: %d pages out, %v", mem.pagesOut(), mem.freeErr)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPoolPutMisuse(t *testing.T) {
	p1, _ := dma.NewPool(newFakeMemory(), 4096, 1)
	p2, _ := dma.NewPool(newFakeMemory(), 4096, 1)
	b, _ := p1.TryGet()
	for name, f := range map[string]func(){
		"other pool": func() { p2.Put(b) },
		"nil":        func() { p1.Put(nil) },
		"twice":      func() { p1.Put(b); p1.Put(b) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Put %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestPoolNoAlloc(t *testing.T) {
	p, err := dma.NewPool(newFakeMemory(), 4096, 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if n := testing.AllocsPerRun(1000, func() {
		b, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.Put(b)
	}); n != 0 {
		t.Errorf("Get/Put: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		b, ok := p.TryGet()
		if !ok {
			t.Fatal("TryGet failed")
		}
		p.Put(b)
	}); n != 0 {
		t.Errorf("TryGet/Put: %v allocations", n)
	}
}

// With the simulator's memory, buffers are host-visible: PhysAddr maps
// their bytes to the PFNs the pool reports, and memory outside the arena
// is not host-visible.
func TestPoolPhysTranslator(t *testing.T) {
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	pt, ok := h.Platform().(hv.PhysTranslator)
	if !ok {
		t.Fatal("hvsim's platform is no hv.PhysTranslator")
	}
	p, err := dma.NewPool(h.Platform(), 8192, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.TryGet()
	gpa, ok := pt.PhysAddr(b.Bytes()[4100:4200])
	if !ok || gpa != b.PFN(1)<<hv.PageShift+4 {
		t.Errorf("PhysAddr = %#x, %v; want %#x", gpa, ok, b.PFN(1)<<hv.PageShift+4)
	}
	if _, ok := pt.PhysAddr(make([]byte, 64)); ok {
		t.Error("heap memory reported host-visible")
	}
	if _, ok := pt.PhysAddr(nil); ok {
		t.Error("empty slice reported host-visible")
	}
	p.Put(b)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGetPut measures a Get/Put pair against a baseline measured in
// the same run: a bare buffered-channel receive and send, the least a
// blocking pool can cost.
func BenchmarkGetPut(b *testing.B) {
	b.Run("baseline-chan", func(b *testing.B) {
		c := make(chan *int, 1)
		c <- new(int)
		b.ReportAllocs()
		for b.Loop() {
			c <- <-c
		}
	})
	b.Run("pool", func(b *testing.B) {
		p, err := dma.NewPool(newFakeMemory(), 4096, 64)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			buf, _ := p.Get(ctx)
			p.Put(buf)
		}
	})
}

// A driver bounces a write through a pool buffer when the caller's data
// is not host-visible.
func Example() {
	h, _ := hvsim.New(hvsim.Config{})
	defer h.Close()
	pool, err := dma.NewPool(h.Platform(), 64<<10, 8)
	if err != nil {
		fmt.Println(err)
		return
	}
	data := []byte("sector data")
	buf, err := pool.Get(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	n := copy(buf.Bytes(), data)
	// ... describe buf.PFN(0..) in a GPA-direct packet, wait for the
	// host's completion ...
	fmt.Println(n, buf.Pages().Count())
	pool.Put(buf)
	fmt.Println(pool.Close())
	// Output:
	// 11 16
	// <nil>
}

package pvh

import (
	"errors"
	"fmt"
	"sort"
)

// ErrNoRoom is returned when usable RAM cannot hold what was asked for.
var ErrNoRoom = errors.New("pvh: not enough usable RAM")

// Usable returns the RAM regions (type 1) with every reserved range cut
// out of them, page-aligned inwards. Overlapping entries are common in real
// firmware maps; reserved always wins.
func Usable(regions []Region) []Region {
	const page = 4096
	var ram []Region
	for _, r := range regions {
		if r.Type != TypeRAM {
			continue
		}
		start := (r.Addr + page - 1) &^ (page - 1)
		end := r.End() &^ (page - 1)
		if end > start {
			ram = append(ram, Region{Addr: start, Size: end - start, Type: TypeRAM})
		}
	}
	ram = merge(ram) // union overlapping RAM entries first
	for _, r := range regions {
		if r.Type == TypeRAM {
			continue
		}
		// Reserved ranges grow outwards to whole pages.
		start, end := r.Addr&^(page-1), r.End()
		if end&(page-1) != 0 {
			if up := (end + page - 1) &^ (page - 1); up > end {
				end = up
			} else {
				end = ^uint64(0) &^ (page - 1) // rounding would wrap: cut to the last page
			}
		}
		ram = subtract(ram, start, end)
	}
	return merge(ram)
}

// Exclude removes [start, end) from the usable regions (the kernel image,
// the boot information, the first MiB).
func Exclude(usable []Region, start, end uint64) []Region {
	return subtract(usable, start, end)
}

func subtract(in []Region, start, end uint64) []Region {
	out := in[:0:0]
	for _, r := range in {
		if end <= r.Addr || start >= r.End() {
			out = append(out, r)
			continue
		}
		if start > r.Addr {
			out = append(out, Region{Addr: r.Addr, Size: start - r.Addr, Type: r.Type})
		}
		if end < r.End() {
			out = append(out, Region{Addr: end, Size: r.End() - end, Type: r.Type})
		}
	}
	return out
}

// merge sorts regions and unions the ones that touch or overlap.
func merge(in []Region) []Region {
	sorted := append([]Region(nil), in...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Addr < sorted[j].Addr })
	var out []Region
	for _, r := range sorted {
		if n := len(out); n > 0 && r.Addr <= out[n-1].End() {
			if r.End() > out[n-1].End() {
				out[n-1].Size = r.End() - out[n-1].Addr
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// Total sums region sizes.
func Total(regions []Region) uint64 {
	var n uint64
	for _, r := range regions {
		n += r.Size
	}
	return n
}

// Place finds size bytes aligned to align inside one usable region, taking
// the highest fit below limit (0: no limit) so that low memory stays free
// for what needs it. It is how the board places the DMA region for VMBus
// rings and buffers inside real RAM rather than at a constant address.
func Place(usable []Region, size, align, limit uint64) (uint64, error) {
	if size == 0 || align == 0 || align&(align-1) != 0 {
		return 0, fmt.Errorf("pvh: bad placement request size %#x align %#x", size, align)
	}
	best, found := uint64(0), false
	for _, r := range usable {
		end := r.End()
		if limit != 0 && end > limit {
			end = limit
		}
		if end < r.Addr+size || end < size {
			continue
		}
		at := (end - size) &^ (align - 1)
		if at < r.Addr {
			continue
		}
		if !found || at > best {
			best, found = at, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%w: no room for %d MiB aligned to %#x below %#x in %d MiB of usable RAM", ErrNoRoom, size>>20, align, limit, Total(usable)>>20)
	}
	return best, nil
}

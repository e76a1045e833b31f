package runtime

// Type-checking stand-ins for tamago-go runtime additions (never linked).
func MemRegion() (start uint64, end uint64) { return 0, 0 }
func CPU() string                           { return "" }

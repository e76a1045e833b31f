package runtime

// Type-checking stand-ins for tamago-go runtime additions (never linked).
func MemRegion() (start uint64, end uint64) { return 0, 0 }
func CPU() string                           { return "" }

// Used by tamago v1.26.0's amd64 interrupt loop.
func GetG() (gp uint, pp uint) { return 0, 0 }
func Wake(gp uint) bool        { return false }
func Asleep(gp uint) bool      { return false }

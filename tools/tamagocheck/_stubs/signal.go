package signal

// Waiting is a type-checking stand-in for tamago-go's os/signal addition.
func Waiting() bool { return false }

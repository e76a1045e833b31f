package netvsc

import "github.com/gohv/gohv/kernel"

var _ kernel.Driver = (*Driver)(nil)

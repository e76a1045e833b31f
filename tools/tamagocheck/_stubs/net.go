package net

import "context"

// SocketFunc is a type-checking stand-in for tamago-go's net addition
// (src/net/net_tamago.go in tamago-go1.26.0).
var SocketFunc func(ctx context.Context, net string, family, sotype int, laddr, raddr Addr) (interface{}, error)

// SetDefaultNS is a type-checking stand-in for tamago-go's net addition
// (src/net/dnsconfig_tamago.go in tamago-go1.26.0).
func SetDefaultNS(servers []string) { defaultNS = servers }

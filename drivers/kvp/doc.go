// Package kvp is the key-value pair exchange integration service
// (docs/hyperv-protocol.md §8.6). It answers every host operation (GET,
// SET, DELETE, ENUMERATE, GET_IP_INFO, SET_IP_INFO) on the five pools:
//
//   - external (0) and auto-external (3) hold what the host sends (its
//     SET and DELETE land there); the application reads them with Get and
//     Entries and learns of changes through Watch;
//   - guest (1) holds what the application publishes (Publish,
//     Unpublish); the host reads and enumerates it;
//   - auto (2) is the guest's intrinsic data, answered from SystemInfo and
//     an AddressProvider in the documented index order (AutoKeys);
//   - auto-internal (4) is never exchanged: the host is refused.
//
// Keys and values travel as UTF-16LE in fixed fields (key 512 bytes, value
// 2048 bytes); IP information is read from and applied through an
// AdapterProvider, or refused with StatusNotSupported without one.
//
// The host keeps one transaction outstanding, and every message is
// answered in place on the bus dispatch goroutine: a malformed message
// gets an error status, never a panic. Answering allocates nothing in
// steady state. kvp owns only the KVP message bodies and the pools;
// framing, negotiation and the channel belong to drivers/ic, addresses to
// the network stack.
//
// # Wire layout
//
// Offsets from the start of the IC message (docs/hyperv-protocol.md §8.6):
//
//	@28 operation u8, @29 pool u8
//	GET, SET        @32 value record
//	DELETE          @32 key size u32, @36 key[512]
//	ENUMERATE       @32 index u32, @36 value record
//	GET/SET_IP_INFO @30 IP record (7426 bytes, no padding)
//
//	value record: @0 type u32, @4 key size u32 (bytes, NUL included),
//	@8 value size u32, @12 key[512] UTF-16LE, @524 value[2048]
//	IP record: @0 adapter id[128 × u16], @256 family u8, @257 DHCP u8,
//	@258 addresses[1024 × u16], @2306 subnets[1024 × u16],
//	@4354 gateways[512 × u16], @5378 DNS servers[1024 × u16]
//
// Replies are the request rewritten in place, so a reply is exactly as
// long as its request.
//
// # Concurrency
//
// The handler runs on the bus dispatch goroutine; Publish, Unpublish, Get,
// Entries and Watch on any goroutine. One mutex guards the pools; neither
// side waits on anything while holding it. The providers are called on
// the dispatch goroutine and must not block.
package kvp

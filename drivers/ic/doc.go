// Package ic is gohv's integration-service (IC) framework: the framing every
// util IC shares (pipe header and ICMSG header, docs/hyperv-protocol.md §8.1), framework
// and message version negotiation (docs/hyperv-protocol.md §8.2), and Service, the runner
// that opens an IC channel, drains it from the channel interrupt, answers
// negotiation itself and hands every other message to one service's handler
// before sending the response back in place.
//
// The individual services (drivers/heartbeat, drivers/shutdown, later time
// sync, KVP, VSS) are built on Service and own only their message bodies.
// ic owns no device policy and touches nothing below the channel it is
// given: the ring, transaction ids and signalling belong to package vmbus.
//
// Everything the host sends is untrusted: headers and version counts are
// validated against the bytes actually received, and a malformed message is
// counted and dropped (or answered with a failure status), never trusted.
package ic

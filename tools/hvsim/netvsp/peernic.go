package netvsp

// PeerNIC is the id of the peer stack's one NIC, for callers of
// Peer.Stack that add addresses or endpoints to it.
const PeerNIC = peerNIC

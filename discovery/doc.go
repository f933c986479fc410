// Package discovery finds the nodes of a cluster on the local network, so
// that nodes given one key and no addresses form one cluster.
//
// # Transport
//
// A small UDP multicast beacon, not mDNS: every node sends one datagram
// (at most MaxPacket, 1344 bytes; about 140 in practice) to an
// administratively scoped IPv4 group (DefaultGroup, 239.255.79.46:7948)
// with a TTL of 1, out of the interface that holds the address it
// advertises. mDNS (hashicorp/mdns) was not chosen: its client asks and
// collects answers in a window, with fresh sockets for each query, so a
// node only learns of others when it asks (serf's users find that a
// restarted peer is never found again); it carries what we need in TXT
// records with no authentication, so an HMAC would have to be squeezed in
// anyway; it listens on 5353, which avahi and systemd-resolved hold on
// many hosts; and its responder answers any query from anyone. A beacon
// of our own is a hundred lines, authenticates every packet, and is
// bounded by construction.
//
// # Packets
//
// A packet (see packet.go) carries the protocol version, whether it is a
// query (announce me, and answer) or an announcement, the cluster name,
// the node name, its gossip address, whether it belongs to a bootstrapped
// cluster and that cluster's ID when known, whether it is fresh (no raft
// state, no remembered peers) and settled, its candidate (see Decide), the
// sender's start time, sequence number and send time, and an HMAC-SHA256
// over all of
// it under a key derived from the cluster key (DeriveKey: HKDF-SHA256 with
// a fixed label). The cluster key itself never reaches this package.
//
// A packet that is oversized, malformed, of another cluster name,
// unauthenticated, stale (sent more than MaxSkew, 10 s, before or after
// now by this host's clock), replayed (a sequence number not above the
// last one accepted from the same node's run, or an earlier run's), or
// that announces this node's own name from another run, is ignored and
// counted (Stats), and logged at most once a minute per reason. Checking
// a packet allocates nothing until its MAC is verified and it is found
// fresh; the receive buffer is one fixed buffer; at most MaxPeers nodes
// are remembered, and only authenticated ones.
//
// # Traffic
//
// A node sends a query at start (it announces the node too, so one
// packet does both), an announcement when its state changes or to answer
// a query, never two packets within Interval/4 of each other, and in
// steady state exactly one per Interval (2 s). With N nodes on the LAN
// that is N/2 packets a second on the group, each of about 170 bytes on
// the wire, and every node receives N/2 packets a second: both grow
// linearly with N (100 nodes: 50 packets, 8.5 KB a second). A node starting
// adds its query and at most one answer from each node.
//
// # Forming
//
// Decide is the rule, a pure function. Fresh nodes listen for a settle
// window (3 intervals, plus up to one of jitter), naming as their
// candidate the lowest name among the fresh nodes they hear; the
// candidate bootstraps once every fresh node it hears has settled and
// names it; the others join. Two fresh nodes never both bootstrap as long
// as neither's packets are lost to the other, one way, for PeerTTL (10 s,
// five intervals) while they form: a link that drops one direction's
// multicast that long can make two clusters, which are then reported as
// conflicts, never merged. A fresh node that hears a bootstrapped node
// of its key joins that cluster; a node that belongs to a cluster never
// bootstraps, joins its cluster's peers it hears (so a peer whose address
// changed, or that restarted, is found again: a node is its name and raft
// state, so a clone of a member, same name and same state, takes its seat
// once the original has been dead DeadNodeReclaimTime, 10 s, exactly as
// if it had moved; clones need fresh data dirs), and reports bootstrapped
// peers of another cluster ID as conflicts, which it never merges.
//
// The rule keeps holding once a node has decided to join: until it is in
// a cluster it acts on every change (Act), so if its candidate goes quiet
// before it bootstraps, the next one bootstraps once the others name it.
// A fresh node that has heard a bootstrapped node never bootstraps,
// even once that node has gone quiet: a cluster exists, and it waits for
// it. The agent (cmd/graft) joins, while it waits to be added, each
// bootstrapped node it hears directly, so that the cluster's leader
// learns of it at once rather than through gossip's relays.
//
// # Security
//
// Only holders of the cluster key can make a packet that is acted on. A
// stranger can forge nothing, and replaying a recorded packet is refused:
// while its sender is remembered, by its sequence number; after that, by
// its send time. A silent peer is forgotten after 3 PeerTTL (30 s) and
// at least 2 MaxSkew + PeerTTL, by when every packet it sent is stale.
// This assumes that the clocks of a LAN's hosts agree within MaxSkew
// (10 s), as NTP keeps them: a host whose clock is further off is not
// heard at all (its packets are counted and logged as stale, with how
// far off they were), and between hosts whose clocks differ by d, a
// packet replayed more than MaxSkew + d after it was sent is refused. A
// key holder can claim any name and address:
// it could already join the cluster. Joining goes through the gossip
// port, which is encrypted with the cluster key, so an address announced
// in a packet that is somehow wrong costs a failed join, never a wrong
// cluster. Anyone on the LAN can see the cluster name, node names and
// gossip addresses, as anyone can who watches the gossip port. A node
// with no key authenticates nothing: it only reports the clusters it
// sees (see Sightings), acting on none, and keeps the first 16 different
// sightings of its window, so a flood of made-up announcements can crowd
// a real cluster out of that report, nothing more.
package discovery

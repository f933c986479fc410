// Package api is graft's local API: HTTP and JSON on a unix socket (and,
// if asked, a loopback TCP port) through which the graft CLI, and scripts,
// read, write and watch the World of the agent on this host.
//
// The API has no authentication: whoever can connect can write. The agent
// serves it on <data-dir>/graft.sock, created mode 0600 in a directory only
// its owner can enter, and refuses TCP addresses that are not loopback.
// Requests over TCP must also name a loopback host in their Host header, so
// a web page cannot reach the API through DNS rebinding. The other way
// round, Client talks only to a unix socket served by its own user or root
// (DialUnix): what it sends never reaches another user's process, whatever
// path led to the socket.
//
// # Endpoints
//
//	GET    /v1/kv/{key...}[?linearizable=true]  one key: a KV object and the leader contact; 404 if missing
//	PUT    /v1/kv/{key...}[?cas=REV]            set the key to the raw request body: {"rev": N}
//	DELETE /v1/kv/{key...}[?cas=REV]            delete the key (missing is fine): {"rev": N}
//	GET    /v1/kv?prefix=P[&linearizable=true]  keys under P, sorted: {"rev": N, "kvs": [KV...]} and the leader contact
//	GET    /v1/watch?prefix=P[&rev=N]           a stream of watch objects, one JSON object a line
//	GET    /v1/status                           the node and cluster as this node sees them
//	POST   /v1/join                             join the cluster through {"addrs": ["HOST:PORT"...], "token": KEY}: {"joined": N} (see JoinResult)
//	GET    /v1/members                          the cluster's members: [MemberInfo...] (see MemberInfo)
//	POST   /v1/leave                            leave the cluster gracefully, then stop the agent: 202 {"leaving": true}
//	GET    /v1/deploys[?linearizable=true]      every deploy, oldest first: {"rev": N, "deploys": [DeployInfo...]}
//	POST   /v1/deploys                          store {"origin": NAME, "graph": BASE64} as the newest deploy: {"number": N}
//	GET    /v1/deploys/{n}[?linearizable=true]  deploy n with its graph (see Deploy); 404 if missing
//	POST   /v1/deploys/{n}/rollback             store deploy n's graph again as the newest deploy: {"number": N}; 409 if n is the newest
//	POST   /v1/sema/{id...}[?count=N]           wait for a slot of cluster semaphore id, then hold it while the request stays open (see Semaphores)
//	DELETE /v1/sema/{id...}?token=T             give back the slot a request of this agent holds: {"released": true} once the cluster has it
//
// Keys are UTF-8 text, at most 4 KiB (fsm.MaxKeySize); in a path they are
// percent-encoded (a '/' may stay as it is, but "//", "." and ".." segments
// must be encoded, since they are cleaned away otherwise: Client encodes every
// key whole). Keys under "_graft/" are graft's own: they can be read but not
// written. A value is at most 1 MiB (fsm.MaxValueSize; 413 beyond). Putting
// a key's current value again makes no new revision and no watch event: the
// answer is the current revision.
//
// Reads are served by the local copy of the state, on a leader or a
// follower alike, so they answer without a quorum. A local read sees every
// write made through the same agent before it (a write returns once the
// local copy has it), and may miss writes made elsewhere since the node
// last heard from a leader: a moment on a healthy cluster, without limit on
// a node cut off. Every read answer (a get, found or not, a list, a watch)
// says how long that is, in headers:
//
//	X-Graft-Last-Contact: 1520   milliseconds since the node last heard from a leader,
//	                             when the read began: 0 on the leader, -1 if never since it started
//	X-Graft-Known-Leader: false  whether the node knew a leader
//
// and in its JSON body (a get's KV object, a list, a watch's first object)
// as "last_contact_ms" and "known_leader". Client reads report them through
// ReportInfo, a watch through Watch.Contact. linearizable=true makes a read
// reflect every write committed before it, at the cost of a round trip to
// the leader; without one it fails with 503.
//
// A node that has just restarted holds only its last snapshot: raft
// replays the rest of its log only once it hears from a leader. Until the
// local copy has applied everything the log held when the node started
// (Config.Node's CaughtUp), or a linearizable read has succeeded, every
// read, and a watch from now, is made linearizable, so the node never
// answers from older state than it had before.
//
// A join's addresses are gossip addresses of any members of the cluster
// (their "gossip_address" in /v1/status); N is how many of them answered.
// The key ("token", optional) is the cluster's: a node that never had a
// peer adopts it, and one that never had a peer also sets its own
// one-node cluster aside to join another; either restarts its cluster side
// (and the API), which the answer says (JoinResult). Either moves the node
// to another cluster, so only the unix socket takes them: any user of the
// host can reach a TCP address.
// A leave answers before the agent starts stopping: the agent first lets
// running resources finish, then leaves (its raft seat and semaphore slots
// are released at once), then closes the API.
//
// # Compare-and-swap
//
// A put or a delete with ?cas=REV applies only if the key's mod_rev is
// REV, and REV 0 only if the key does not exist (a delete with cas=0 then
// changes nothing). The compare and the write are one raft entry: no
// other write comes between them. If the compare holds the answer is 200
//
//	{"rev": 12, "applied": true}
//
// with the revision of the write (the current one if it changed nothing).
// If it fails, nothing is written and the answer is 412 Precondition
// Failed with the key as it is, to retry with without reading it again:
//
//	{"rev": 14, "applied": false, "kv": {KV}, "error": "compare failed: key \"k\" is at revision 11, not 9"}
//
// where "kv" is absent if the key does not exist (a retry then compares
// with 0), and "rev" is the revision of the node's state "kv" was read
// at: never older than the state the compare failed on, and possibly
// newer (the node applied later entries before reading). A REV that is
// not a whole number from 0 to 2^64-1, given twice, or a write's query
// that does not parse or holds another parameter than cas, is refused
// with 400 and nothing is written: a typo never makes a conditional write
// unconditional. See CASAnswer, Client.PutCAS and Client.DeleteCAS.
//
// # Values
//
// A KV object is
//
//	{"key": "k", "value": "v", "create_rev": 3, "mod_rev": 7, "version": 2, "owner": "host"}
//
// where "value" holds the value as a JSON string when it is valid UTF-8.
// Otherwise "value" is absent and "value_base64" holds it in standard base64
// (RFC 4648, with padding). Exactly one of the two is present. "owner" is
// present only for a host's ephemeral keys.
//
// # Watching
//
// A watch answers 200 and then streams newline-delimited JSON objects,
// flushed one by one, until the client goes away or the agent stops:
//
//	{"start": true, "rev": 41, "last_contact_ms": 0, "known_leader": true}
//	{"rev": 42, "events": [{"type": "put", "kv": {...}}]}
//	{"rev": 45, "events": [{"type": "delete", "kv": {...}}, ...]}
//	{"rev": 90, "resync": true, "state": [KV...]}
//	{"error": "the agent is stopping"}
//
// The first object always has "start", and the leader contact: it says the
// watch is set up and will report every change under the prefix after
// revision rev: the rev asked for, or, if none was (or 0), the current
// revision. A rev from a list or an earlier watch therefore continues from
// it without a gap. A rev ahead of the local copy (another node may just
// have returned it) first waits, up to the request timeout, for the copy to
// catch up with the cluster; one still ahead then is refused with 400
// ("required revision N is a future revision"). Each following object carries
// the changes of one or more revisions in order, and "rev", the revision up
// to which the watcher has seen everything: a watch started again from it
// misses nothing. A delete event's kv holds the key as it was, with mod_rev
// set to the delete's revision. An object with "resync" says the changes
// after the revision the watch had reached are no longer kept (the watcher
// fell too far behind, or the node installed a snapshot): "state" then
// holds every key under the prefix at rev, to replace what the watcher had.
// An object with "error" is the last one: the agent ended the watch.
//
// # Semaphores
//
// A POST to /v1/sema/{id} takes a slot of the cluster-wide semaphore id
// (the one graphs name "@@id"), which has count slots (1 to
// fsm.MaxSemaCount, default 1; every holder must give the same), and
// holds it for as long as the request stays open. The request has no
// body. The id is escaped as a key is. The answer comes once the slot is
// granted, the wait being a place in the cluster's FIFO queue, given up if
// the client closes the request first. Then the agent streams
// newline-delimited JSON objects (SemaLine):
//
//	{"granted": true, "id": "db", "count": 1, "token": 812, "rev": 812, "keepalive_ms": 1000}
//	{"keepalive": true}
//	{"lost": true, "error": "..."}
//	{"released": true}
//
// The first object carries the fencing token, the agent's revision when
// the slot was granted, and the keepalive interval: a keepalive object
// follows at that interval while the slot is held, so that a client tells
// a frozen or cut-off agent from a quiet one (Client counts the slot lost
// after SilenceFactor intervals without a line; the cluster frees a silent
// host's slots only after several seconds more). The last object is "lost"
// (the cluster took the slot back, the agent lost touch with the leader, or
// the agent is stopping; the agent gives the slot back if it still can) or
// "released". Closing the request gives the slot back. A DELETE of
// /v1/sema/{id}?token=T gives it back and answers once the cluster has it
// (or fails saying why; the agent then keeps trying), so a client knows
// the release took; 404 if no open request of this agent holds that slot.
// An agent takes at most Config.MaxSemaRequests such requests at once,
// waiting or holding (429 beyond). A bad id, count or token answers 400
// naming it, a count other than the holders' 409, and an agent that
// serves no semaphores 501. A holder that lost its slot may still
// act for a moment: hand the token to what the slot guards.
//
// # Errors
//
// Failures answer {"error": "message"} with: 400 for bad input (an empty
// key, a reserved key, a bad query parameter, a watch from a revision the
// cluster has not reached), 404 for a missing key or an
// unknown path, 405 for a method a path does not take, 412 for a
// compare-and-swap whose compare failed (see above: not a failure of the
// agent, and its body says more than "error"), 413 for a value too
// large, 501 for the membership endpoints of an agent that runs no
// membership, 502 for a join that no given address answered (wrong
// addresses, nodes down, or another cluster key), 409 for a join the
// agent refuses (a node that had peers keeps its cluster and key; the
// message says how to move it), 403 for a join with a key, or one that
// would set the node's cluster aside, over TCP, 503 when the cluster has
// no leader or the agent is stopping, 504 when the operation timed out or
// its outcome is unknown (a write that may or may not have been applied),
// 507 for a write refused because the data dir of the node that would
// store it (this one's, or the leader's it was forwarded to) is full (not
// applied), 500 otherwise.
package api

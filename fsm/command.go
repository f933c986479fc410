package fsm

// Limits on what a command may carry. Commands that break them are rejected
// when they are encoded, and again, as untrusted input, when decoded.
const (
	MaxKeySize     = 4 << 10 // bytes in a key
	MaxValueSize   = 1 << 20 // bytes in a value
	MaxEntrySize   = 8 << 20 // bytes in one encoded log entry
	MaxBatch       = 4096    // commands in one log entry
	MaxTxnOps      = 256     // compares plus operations in one transaction
	MaxExports     = 10000   // resources in one export set
	MaxNameSize    = 256     // bytes in a node, holder, namespace, semaphore id or export kind
	MaxSemaCount   = 1 << 20 // slots in one semaphore
	MaxEntryOps    = 1 << 16 // commands, nested commands, compares and exports in one log entry
	DefaultHistory = 100_000 // events kept for watchers by default
)

// InternalPrefix starts every key graft keeps for itself.
const InternalPrefix = "_graft/"

// Key prefixes of the state built on the key space. An export's key is
// ExportPrefix + node + "/" + kind + "/" + name: node and kind hold no '/',
// so the name is the rest of the key and may hold '/' (a file's path).
const (
	SemaPrefix   = InternalPrefix + "sema/"   // + id: msgpack SemaState
	ExportPrefix = InternalPrefix + "export/" // + node + "/" + kind + "/" + name: the resource's data
	HostPrefix   = InternalPrefix + "host/"   // + namespace + "/" + node: the node's value
)

// Op is a command's operation.
//
// Node names are never empty and never contain '/' (they are parts of
// keys); semaphore ids and holders are never empty. A command that breaks
// these rules, or writes with OpPut, OpDelete or OpDeletePrefix (directly or
// in a transaction) under SemaPrefix or ExportPrefix, fails with Result.Err
// and changes nothing.
type Op uint8

// The operations.
const (
	// OpPut sets Key to Value. With Ephemeral, the key belongs to Node and
	// goes when that node expires; without, Node is ignored and the key
	// belongs to no node.
	OpPut Op = iota + 1
	// OpDelete deletes Key.
	OpDelete
	// OpDeletePrefix deletes every key starting with Key. The prefix may not
	// cover SemaPrefix or ExportPrefix (so "" and "_graft/" are errors).
	OpDeletePrefix
	// OpTxn checks Compares; if all hold it applies Then, otherwise Else.
	// Then and Else hold OpPut, OpDelete and OpDeletePrefix commands only.
	// Result.OK says which branch ran.
	OpTxn
	// OpExportSet replaces the set of resources Node exports with Exports:
	// keys under ExportPrefix+Node+"/" not in the set are deleted, the
	// others put (unchanged ones produce no event). Kinds may not be empty
	// or contain '/'; names may not be empty; a kind and name may appear
	// once in a set.
	OpExportSet
	// OpSemaAcquire asks for a slot of semaphore Sema (Count slots) for
	// Holder on Node. A free slot is granted at once; otherwise the holder
	// waits in FIFO order. Asking again for a holder that holds or waits
	// changes nothing. A Count other than the semaphore's current one is an
	// error while the semaphore has holders or waiters.
	OpSemaAcquire
	// OpSemaRelease gives up Holder's slot, or its place in the queue, and
	// grants freed slots to the next waiters.
	OpSemaRelease
	// OpExpireNode releases every slot and queue place Node has, and
	// deletes its ephemeral keys. Its exports stay.
	OpExpireNode
	// OpRemoveNode does what OpExpireNode does and also deletes Node's
	// exports: the node has left the cluster for good.
	OpRemoveNode
	// OpFence guards the commands after it in the entry, up to the next
	// OpFence: they apply only if the entry was appended to the raft log
	// in term Term (see FSM.ApplyEntry). Its Result.OK says whether they
	// did; the results of guarded commands that did not apply say
	// ErrFenced. Request names the guarded commands for their sender, who
	// learns from its own replica whether they applied (at most once: an
	// entry of a later term never applies them).
	OpFence
)

// ErrFenced is the Result.Err of a command guarded by an OpFence that did
// not hold: it changed nothing.
const ErrFenced = "fenced: the entry was not appended in the term the request was made for"

// Command is one state change. A raft log entry holds a batch of them.
type Command struct {
	Op        Op        `msgpack:"o"`
	Key       string    `msgpack:"k,omitempty"`
	Value     []byte    `msgpack:"v,omitempty"`
	Ephemeral bool      `msgpack:"e,omitempty"`
	Node      string    `msgpack:"n,omitempty"`
	Compares  []Compare `msgpack:"c,omitempty"`
	Then      []Command `msgpack:"t,omitempty"`
	Else      []Command `msgpack:"x,omitempty"`
	Exports   []Export  `msgpack:"xs,omitempty"`
	Sema      string    `msgpack:"s,omitempty"`
	Count     int64     `msgpack:"sc,omitempty"`
	Holder    string    `msgpack:"h,omitempty"`
	Term      uint64    `msgpack:"tm,omitempty"` // OpFence
	Request   string    `msgpack:"rq,omitempty"` // OpFence
}

// CompareTarget is what a Compare looks at.
type CompareTarget uint8

// The compare targets.
const (
	// CompareValue holds if the key exists with exactly Value.
	CompareValue CompareTarget = iota + 1
	// CompareModRev holds if the key's ModRev equals Rev (0: the key is
	// absent).
	CompareModRev
	// CompareExists holds if the key exists.
	CompareExists
	// CompareAbsent holds if the key does not exist.
	CompareAbsent
)

// Compare is one condition of a transaction.
type Compare struct {
	Target CompareTarget `msgpack:"t"`
	Key    string        `msgpack:"k"`
	Value  []byte        `msgpack:"v,omitempty"`
	Rev    uint64        `msgpack:"r,omitempty"`
}

// Export is one exported resource.
type Export struct {
	Kind string `msgpack:"k"`
	Name string `msgpack:"n"`
	Data []byte `msgpack:"d"`
}

// Result is the outcome of one command, the same on every replica.
type Result struct {
	// Rev is the revision after the command: the entry's index if it
	// changed anything, else the revision before it.
	Rev uint64 `msgpack:"r"`
	// OK is, for OpTxn, whether the compares held.
	OK bool `msgpack:"ok,omitempty"`
	// Granted and Token are, for OpSemaAcquire, whether the holder has a
	// slot and its fencing token: the raft index at which the slot was
	// granted, or, when one entry grants several slots, the next number
	// above the last token given. Tokens are unique and increase in log
	// order across all semaphores.
	Granted bool   `msgpack:"g,omitempty"`
	Token   uint64 `msgpack:"tk,omitempty"`
	// Err is set when the command was invalid (and changed nothing).
	Err string `msgpack:"e,omitempty"`
}

// KV is a key and its value.
type KV struct {
	Key   string `msgpack:"k" json:"key"`
	Value []byte `msgpack:"v" json:"value"`
	// CreateRev and ModRev are the revisions that created the key and last
	// changed it; Version counts its changes since it was created.
	CreateRev uint64 `msgpack:"c" json:"create_rev"`
	ModRev    uint64 `msgpack:"m" json:"mod_rev"`
	Version   uint64 `msgpack:"ver" json:"version"`
	// Owner is the node an ephemeral key belongs to, else empty.
	Owner string `msgpack:"o,omitempty" json:"owner,omitempty"`
}

// EventType says whether an event put or deleted a key.
type EventType uint8

// The event types.
const (
	EventPut EventType = iota + 1
	EventDelete
)

// Event is one change of one key. For a delete, KV holds the key and the
// value, CreateRev, Version and Owner it had, with ModRev set to the
// revision of the delete. KV.ModRev is always the event's revision.
type Event struct {
	Type EventType `msgpack:"t"`
	KV   KV        `msgpack:"kv"`
}

// SemaState is the state of one semaphore, stored under SemaPrefix+id. A
// semaphore with no holders and no waiters is deleted.
type SemaState struct {
	Count   int64  `msgpack:"c"`
	Holders []Slot `msgpack:"h"`
	Waiters []Slot `msgpack:"w"`
}

// Slot is a holder of a semaphore slot, or a waiter for one.
type Slot struct {
	Node   string `msgpack:"n"`
	Holder string `msgpack:"h"`
	// Token is the fencing token of a granted slot (zero while waiting);
	// see Result.Token.
	Token uint64 `msgpack:"t,omitempty"`
}

// Package engine runs a graph of resources, keeping every resource converged:
// it watches each resource for changes and applies each one only after
// everything it depends on is in place.
//
// # The model
//
// A [Graph] holds [Vertex] values (a resource of some kind under a name) and
// [Edge] values (from must be applied before to). Every resource implements
// [Res]: Watch reports when its state may have changed, CheckApply checks the
// state and fixes it.
//
// One scheduler goroutine owns the state of every vertex (started, dirty,
// running, failed, refresh pending, and how many of its parents have pending
// work), so that state needs no locks. Watch goroutines signal it through a
// per-vertex flag word and a shared wake-up channel, so a Watch never blocks on
// a busy engine and bursts of events coalesce. CheckApply runs on a goroutine
// of its own and reports back to the scheduler.
//
// # Guarantees
//
//   - Order: a vertex's CheckApply never starts while one of its ancestors has
//     pending work (dirty, refresh pending, running or failed), and an ancestor
//     never starts while one of its descendants is running. Independent
//     vertices run in parallel.
//   - No CheckApply runs before the resource's Watch reported it is running.
//   - An event that arrives during CheckApply causes exactly one more
//     CheckApply; many such events coalesce into one.
//   - With no event or refresh since its last successful CheckApply a vertex
//     is not run again; a vertex already in state lets its descendants proceed.
//   - The descendants of a failed vertex do not run; independent branches do.
//     A failed vertex does not hold back convergence or shutdown.
//   - A new graph is diffed against the running one by kind, name and
//     parameters: unchanged vertices keep running untouched, changed ones are
//     replaced, removed ones are stopped. The swap waits only for the running
//     CheckApply calls of the vertices it replaces or removes (which start no
//     new one meanwhile), naming them in the log; every other vertex goes on
//     running and repairing drift. The wait is bounded by
//     Config.SwapTimeout, after which those calls are cancelled.
//   - Cancelling Run's context finishes in-flight work and stops; [Engine.Abort]
//     also cancels the contexts of running CheckApply calls.
//
// Cost per event is proportional to the descendants it touches, not to the size
// of the graph.
//
// # Metaparameters, semaphores, refresh and send/recv
//
// Each vertex carries a [Meta] (mgmt's metaparams: noop, retry, delay,
// timeout, poll, limit/burst, sema, rewatch, autoedge, autogroup). Retries,
// polls and rate-limited events are entries in one timer heap owned by the
// scheduler, so they cost no goroutines and stopping interrupts them at once.
// Semaphores ("id" or "id:count") are taken in sorted order on the CheckApply
// goroutine, so no graph can deadlock on them: this host's first, then the
// cluster's ("@@id", held through Config.ClusterSemaphores, whose fencing
// tokens the CheckApply sees in Runtime.Fences; a lost slot cancels it; a
// noop check takes none).
//
// After a CheckApply that changed something, each notify edge out of the
// vertex delivers a refresh, seen once by the child's next CheckApply. With
// Config.StateDir set, pending refreshes, and the vertices with notify edges
// whose CheckApply is in flight, are persisted so a crash loses none.
//
// Edges may carry [KeyMap]s: a [Sender]'s values go into the receiver's
// parameters, type-checked by [Graph.Validate], delivered once per new value.
//
// [AutoEdges] and [AutoGroup] are graph transformations a frontend applies
// before handing a graph to the engine.
//
// # Where each metaparameter lives
//
// Each metaparameter (its YAML key, then the [Meta] field), the
// file:function that implements it, and the tests that pin it (checked by
// TestDocMetaparamTableNamesRealFunctionsAndTests):
//
//	noop        Noop         dispatch.go:start (CheckApply with apply false, also with Config.Noop)
//	                         dispatch.go:outcome (no refresh delivered; listed as would change)
//	                         dispatch.go:settleConsumed (the refresh it saw stays due)
//	                         sema.go:semaphores (takes no cluster slot)
//	            tests        TestNoopPassesApplyFalse, TestNoopSendsNoRefresh,
//	                         TestNoopRunKeepsPersistedRefresh, TestNoopRunLeavesTheRefreshForTheFirstRealRun,
//	                         TestNoopCheckTakesNoClusterSlot, TestNoopConvergedStatusListsWhatWouldChange
//	retry       Retry        dispatch.go:failed (CheckApply), scheduler.go:watchExited (Watch)
//	                         swap.go:retire (a removed ID's counter goes)
//	            tests        TestRetryCountsAndDelay, TestRetrySucceedsThenDescendantsRun,
//	                         TestRetryCounterKeptAcrossSwap, TestRetryBudgetRefilledWhenVertexLeavesAndReturns,
//	                         TestWatchRetry
//	retryreset  RetryReset   dispatch.go:settleConsumed
//	            tests        TestRetryCounterKeptAcrossSwap
//	delay       Delay        dispatch.go:failed, scheduler.go:watchExited (set the timer)
//	                         scheduler.go:handleTimers (the retry or restart when it fires)
//	            tests        TestRetryCountsAndDelay, TestWatchRetry, TestStopLandsInsideWaits
//	timeout     Timeout      dispatch.go:checkApply
//	            tests        TestTimeoutCancelsCheckApply
//	poll        Poll         swap.go:startWatch (a timer instead of Watch)
//	                         scheduler.go:handleTimers (timerPoll)
//	            tests        TestPollReplacesWatch
//	limit       Limit        swap.go:startWatch (the limiter), scheduler.go:event (holds an event)
//	burst       Burst        scheduler.go:handleTimers (timerLimit), meta.go:Meta.Validate
//	            tests        TestRateLimit, TestStopLandsInsideWaits, TestMetaValidation
//	sema        Sema         sema.go:ParseSema, sema.go:semaphores, sema.go:takeSemaphores
//	                         clustersema.go:acquireSlots, clustersema.go:checkClusterSemas (@@)
//	                         autogroup.go:regrouped (a group holds the union)
//	            tests        TestSemaphoreCapsConcurrency, TestSemaphoresInOppositeOrderNeverDeadlock,
//	                         TestClusterSemaphoresTakenAfterLocalOnesInSortedOrder,
//	                         TestClusterSemaphoreNeedsACluster, TestGroupedVerticesSeeTheGroupsFences
//	(none)      Config.Sema  sema.go:globalSema, sema.go:semaphores (taken first)
//	            tests        TestGlobalSemaphore
//	rewatch     Rewatch      plan.go:keeps
//	            tests        TestDeadVertexRestartedByChangeOrRewatch, TestVertexDyingWhileSwapWaitsIsRewatched
//	autoedge    NoAutoEdge   autoedge.go:AutoEdges
//	            tests        TestAutoEdges
//	autogroup   NoAutoGroup  autogroup.go:groupBuckets
//	            tests        TestAutoGroupMerges, TestNoAutoGroupOnEveryVertexKeepsThemApart
//
// The YAML keys are parsed by the YAML frontend, which also reads export
// (a World feature, not the engine's) and accepts mgmt's realize and reset
// with a warning: the engine has neither.
package engine

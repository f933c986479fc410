package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/graftcm/graft/cluster/internal/backoff"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/hashicorp/raft"
)

// leaveReq asks the reconcile goroutine to remove a leaving server.
type leaveReq struct {
	ctx  context.Context
	id   string
	done chan error
}

// Leave leaves the cluster gracefully: leadership moves elsewhere, the
// leader removes this node from raft and releases its slots at once, and
// the ring is told. The leader refuses if the voters left would not be a
// quorum of the new configuration; the node then leaves the ring all the
// same (the leader releases its slots at once) and keeps its raft seat,
// as a voter that is down, until removing it no longer costs the quorum.
//
// Leave waits for no one who is not there: with no other voter up in the
// ring, no leader can take this node out of raft (it keeps its seat, and
// a leader removes it later as a node that left), and with nobody up at
// all there is nobody to tell. A node alone in its raft configuration
// with nobody up in its ring has nothing to leave: Leave returns nil at
// once. Close the server afterwards.
func (s *Server) Leave(ctx context.Context) error {
	if s.ctx.Err() != nil {
		return raftnode.ErrClosed
	}
	id := s.cfg.Raft.NodeID
	peers, voters := s.upInRing()
	if peers == 0 && !s.inRaftWithOthers() {
		s.log.Info("this node is its cluster's only server: nothing to leave")
		return nil
	}
	s.warnSoleVoter()
	s.log.Info("leaving the cluster")
	var errs []error
	s.leaving.Store(true)
	if peers == 0 {
		s.log.Info("no other node is up: nobody to tell of the leave")
	} else {
		s.announceLeaving()
	}
	switch {
	case voters > 0:
		if s.node.IsLeader() {
			if err := s.node.TransferLeadership(); err != nil {
				s.log.Warn("leadership transfer before leaving failed", "err", err)
			}
		}
		if err := s.removeSelf(ctx, id); err != nil {
			errs = append(errs, err)
		}
	case s.inRaftWithOthers():
		s.log.Info("no other voter is up to take this node out of raft: it keeps its seat until a leader removes it")
	}
	if err := s.ml.Leave(s.cfg.Gossip.TCPTimeout); err != nil {
		errs = append(errs, fmt.Errorf("cluster: gossip leave: %w", err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.log.Info("left the cluster")
	return nil
}

// warnSoleVoter warns, before a leave, when this node is the only voter
// of its configuration: the others cannot elect a leader without it.
func (s *Server) warnSoleVoter() {
	servers, err := s.node.Configuration()
	if err != nil {
		return
	}
	voters, self := 0, false
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			voters++
			self = self || string(srv.ID) == s.cfg.Raft.NodeID
		}
	}
	if voters == 1 && self {
		s.log.Warn("this node is the cluster's only voter: the other servers cannot elect a leader without it "+
			"until it comes back", "servers", len(servers))
	}
}

// upInRing counts the other nodes alive in this node's ring, and those of
// them that are voters in its raft configuration.
func (s *Server) upInRing() (peers, voters int) {
	ring := s.ringView()
	delete(ring, s.cfg.Raft.NodeID)
	servers, err := s.node.Configuration()
	if err != nil {
		return len(ring), 0
	}
	for _, srv := range servers {
		if _, up := ring[string(srv.ID)]; up && srv.Suffrage == raft.Voter {
			voters++
		}
	}
	return len(ring), voters
}

// inRaftWithOthers reports whether this node's raft configuration holds
// another server.
func (s *Server) inRaftWithOthers() bool {
	servers, err := s.node.Configuration()
	if err != nil {
		return false
	}
	for _, srv := range servers {
		if string(srv.ID) != s.cfg.Raft.NodeID {
			return true
		}
	}
	return false
}

// removeSelf gets id out of raft: through the leader, or, if this node
// still leads (the transfer failed), by itself.
func (s *Server) removeSelf(ctx context.Context, id string) error {
	wait := backoff.New()
	for {
		if s.node.IsLeader() {
			if err := s.requestLeave(ctx, id); err == nil || errors.Is(err, errLeaveRefused) {
				return err
			}
		} else if _, addr := s.node.Leader(); addr != "" {
			resp, err := s.node.Call(ctx, addr, &transport.Request{Op: transport.OpLeave, ID: id})
			switch {
			case err == nil && resp.Code == transport.CodeOK:
				s.log.Info("left the raft cluster")
				return nil
			case err == nil && resp.Code == transport.CodeRefused:
				return fmt.Errorf("cluster: the leader refused the leave: %s", strings.TrimPrefix(resp.Err, "cluster: "))
			case err == nil && resp.Code == transport.CodeFailed:
				// Leadership moving, a configuration change timing out:
				// ask again.
				s.log.Debug("the leader could not take the leave yet", "err", resp.Err)
			}
		}
		if s.ctx.Err() != nil {
			return raftnode.ErrClosed
		}
		if err := wait.Sleep(ctx); err != nil {
			return fmt.Errorf("cluster: leave: no leader took the request: %w", err)
		}
	}
}

// errLeaveRefused means removing the server would cost the cluster its
// quorum.
var errLeaveRefused = errors.New("removing it would leave the voters without a quorum")

// removeLeaving is the leader's side of a graceful leave (the transport.OpLeave
// handler): the reconcile goroutine, which holds the health view, decides.
func (s *Server) removeLeaving(ctx context.Context, id string) error {
	if !s.node.IsLeader() {
		return errors.New("not the leader")
	}
	return s.requestLeave(ctx, id)
}

// serveLeave answers a leaving node's transport.OpLeave on the leader
// (see removeLeaving).
func (s *Server) serveLeave(ctx context.Context, req *transport.Request) *transport.Response {
	if err := s.removeLeaving(ctx, req.ID); err != nil {
		code := transport.CodeFailed
		if errors.Is(err, errLeaveRefused) {
			code = transport.CodeRefused
		}
		return &transport.Response{Code: code, Err: err.Error()}
	}
	return &transport.Response{Code: transport.CodeOK}
}

func (s *Server) requestLeave(ctx context.Context, id string) error {
	req := leaveReq{ctx: ctx, id: id, done: make(chan error, 1)}
	select {
	case s.leaveReqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return raftnode.ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxLeavePushes bounds the peers a leaving node tells of its leave
// directly; the others rely on gossip alone.
const maxLeavePushes = 64

// announceLeaving gossips this node's leaving metadata, then pushes it to
// the peers up in the ring (at most maxLeavePushes) by a push/pull
// exchange each: gossip is best effort, and a peer that has not got the
// update when the node goes takes it for dead, not left.
func (s *Server) announceLeaving() {
	if err := s.updateMeta(); err != nil {
		s.log.Warn("could not tell the ring this node is leaving; some may take it for dead", "err", err)
		return
	}
	ring := s.ringView()
	delete(ring, s.cfg.Raft.NodeID)
	addrs := make([]string, 0, min(len(ring), maxLeavePushes))
	for _, name := range sortedKeys(ring) {
		if len(addrs) == maxLeavePushes {
			break
		}
		if a := ring[name].addr; a != "" {
			addrs = append(addrs, a)
		}
	}
	// One exchange per peer, all at once: an unreachable peer costs its
	// TCP timeout, not every peer's in turn, so the leave waits at most
	// one TCPTimeout here.
	var wg sync.WaitGroup
	errs := make([]error, len(addrs))
	for i, a := range addrs {
		wg.Go(func() {
			if _, err := s.ml.Join([]string{a}); err != nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("could not tell every peer directly that this node is leaving; those left to gossip may take it for dead",
			"peers", len(addrs), "err", err)
	}
}

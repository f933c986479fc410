package cluster

// KnownPeerAddrs exposes knownPeerAddrs: the addresses the moved-node
// announcer joins.
func (s *Server) KnownPeerAddrs() []string { return s.knownPeerAddrs() }

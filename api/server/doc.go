// Package server serves graft's local API, whose endpoints, wire types
// and client are in package api, in front of this node's World and
// cluster membership.
package server

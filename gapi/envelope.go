package gapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/graftcm/graft/fsm"
)

// The World stores an export as one line of JSON saying who it is for,
// then the Export's Data as it is:
//
//	{"v":1,"hosts":["a","b"]}
//	path: /etc/motd
//	content: hi
type envelope struct {
	V     int      `json:"v"`
	Hosts []string `json:"hosts,omitempty"` // empty: every host
}

// envelopeVersion is the version of the envelope this graft writes and
// reads.
const envelopeVersion = 1

// errEnvelope is returned for a World value that is no export envelope
// this graft reads.
var errEnvelope = errors.New("not an export envelope")

// encodeExports turns exports into the World's form, sorted by kind and
// name.
func encodeExports(xs []Export) ([]fsm.Export, error) {
	out := make([]fsm.Export, 0, len(xs))
	for _, x := range xs {
		if len(x.Data) > MaxExportData {
			return nil, fmt.Errorf("export %s %q: data is %d bytes, at most %d", x.Kind, x.Name, len(x.Data), MaxExportData)
		}
		head, err := json.Marshal(envelope{V: envelopeVersion, Hosts: x.Hosts})
		if err != nil {
			return nil, fmt.Errorf("export %s %q: %w", x.Kind, x.Name, err)
		}
		data := make([]byte, 0, len(head)+1+len(x.Data))
		data = append(append(append(data, head...), '\n'), x.Data...)
		out = append(out, fsm.Export{Kind: x.Kind, Name: x.Name, Data: data})
	}
	slices.SortFunc(out, func(a, b fsm.Export) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// decodeEnvelope splits a World value into the hosts it is for (empty:
// every host) and the Export's Data.
func decodeEnvelope(v []byte) (hosts []string, data []byte, err error) {
	head, data, ok := bytes.Cut(v, []byte{'\n'})
	if !ok {
		return nil, nil, fmt.Errorf("%w: no header line", errEnvelope)
	}
	var e envelope
	if err := json.Unmarshal(head, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errEnvelope, err)
	}
	if e.V != envelopeVersion {
		return nil, nil, fmt.Errorf("%w: version %d, this graft reads %d", errEnvelope, e.V, envelopeVersion)
	}
	return e.Hosts, data, nil
}

// forHost reports whether an export for hosts (empty: every host) is for
// host.
func forHost(hosts []string, host string) bool {
	return len(hosts) == 0 || slices.Contains(hosts, host) || slices.Contains(hosts, "*")
}

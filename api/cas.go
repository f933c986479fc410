package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// CASAnswer is the answer to a put or a delete made on condition of the
// key's revision (?cas=REV): 200 with Applied and the revision of the
// write if the key's mod_rev was REV (0: the key did not exist), else 412
// with Error, the key as it is (KV, nil if it does not exist) and Rev,
// the revision it was read at (never older than the state the compare
// failed on).
type CASAnswer struct {
	Write
	Applied bool `json:"applied"`
	// KV is, on a failed compare, the key as it is at Rev; nil if it does
	// not exist (a retry then compares with 0).
	KV *KV `json:"kv,omitempty"`
	// Error says, on a failed compare, what the key's revision was.
	Error string `json:"error,omitempty"`
}

// CompareFailure says why a write on condition that key is at revision
// cas (0: does not exist) was not made, given the key as it is (nil if it
// does not exist).
func CompareFailure(key string, cas uint64, current *KV) string {
	switch {
	case current == nil:
		return fmt.Sprintf("compare failed: key %q does not exist, so is not at revision %d", key, cas)
	case cas == 0:
		return fmt.Sprintf("compare failed: key %q exists, at revision %d (cas 0 asks that it not exist)", key, current.ModRev)
	}
	return fmt.Sprintf("compare failed: key %q is at revision %d, not %d", key, current.ModRev, cas)
}

// PutCAS sets key to value if the key's ModRev is rev (0: if the key does
// not exist), atomically. A failed compare is not an error: the answer
// says Applied false and holds the key as it is, to retry with.
func (c *Client) PutCAS(ctx context.Context, key string, value []byte, rev uint64) (CASAnswer, error) {
	if value == nil {
		value = []byte{}
	}
	return c.cas(ctx, http.MethodPut, key, rev, value)
}

// DeleteCAS deletes key if its ModRev is rev (0: applies only if the key
// does not exist, changing nothing). A failed compare is not an error; see
// PutCAS.
func (c *Client) DeleteCAS(ctx context.Context, key string, rev uint64) (CASAnswer, error) {
	return c.cas(ctx, http.MethodDelete, key, rev, nil)
}

func (c *Client) cas(ctx context.Context, method, key string, rev uint64, body []byte) (CASAnswer, error) {
	path := keyPath(key)
	resp, err := c.send(ctx, method, path, url.Values{"cas": {strconv.FormatUint(rev, 10)}}, body)
	if err != nil {
		return CASAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPreconditionFailed {
		defer resp.Body.Close()
		return CASAnswer{}, readError(resp)
	}
	applied := resp.StatusCode == http.StatusOK
	var a CASAnswer
	if err := decodeAnswer(resp, method, path, &a); err != nil {
		return CASAnswer{}, err
	}
	if applied && !a.Applied {
		// An agent older than this client ignores ?cas= and writes
		// whatever the key's revision.
		return CASAnswer{}, fmt.Errorf("api: the agent at %s does not know cas: it made the %s of %q without comparing (revision %d)",
			c.addr, method, key, a.Rev)
	}
	a.Applied = applied
	return a, nil
}

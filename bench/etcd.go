package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/graftcm/graft/bench/loadgen"
)

// etcdMember is one member of the driver's etcd cluster.
type etcdMember struct {
	client string // client URL
	p      *proc
}

// startEtcdCluster starts size etcd members on loopback as one new
// cluster and waits until each reports itself healthy (it has a leader).
func startEtcdCluster(ctx context.Context, bin, dir string, size int) ([]*etcdMember, error) {
	ports, err := freePorts(2 * size)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range size {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[size+i]))
	}
	var ms []*etcdMember
	for i := range size {
		client := "http://127.0.0.1:" + strconv.Itoa(ports[i])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[size+i])
		args := []string{"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--log-level", "error", "--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "graft-bench"}
		m := &etcdMember{client: client}
		if m.p, err = startProc(ctx, fmt.Sprintf("etcd m%d", i), bin, args, nil); err != nil {
			stopEtcd(ms)
			return nil, err
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		err := poll(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
			if m.p.exited() {
				return false, errExited
			}
			var h struct {
				Health string `json:"health"`
			}
			err := getJSON(ctx, http.MethodGet, m.client+"/health", nil, &h)
			return err == nil && h.Health == "true", err
		})
		if err != nil {
			stopEtcd(ms)
			return nil, m.p.failure("forming the cluster", err)
		}
	}
	return ms, nil
}

func stopEtcd(ms []*etcdMember) {
	for _, m := range ms {
		m.p.kill()
	}
}

func endpoints(ms []*etcdMember) string {
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.client)
	}
	return strings.Join(eps, ",")
}

// getJSON sends body (if any) as JSON and decodes the answer into out.
func getJSON(ctx context.Context, method, url string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// etcdLeader is the member that is the leader, asked through etcd's
// HTTP/JSON gateway.
func etcdLeader(ctx context.Context, ms []*etcdMember) (*etcdMember, error) {
	for _, m := range ms {
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		if err := getJSON(ctx, http.MethodPost, m.client+"/v3/maintenance/status", struct{}{}, &st); err != nil {
			return nil, err
		}
		if st.Leader != "" && st.Leader == st.Header.MemberID {
			return m, nil
		}
	}
	return nil, errors.New("etcd: no member says it is the leader")
}

// etcdLoad runs the helper's load on the cluster.
func etcdLoad(ctx context.Context, helper string, ms []*etcdMember, op string, clients int, dur time.Duration) (loadgen.Result, error) {
	var r loadgen.Result
	err := runHelper(ctx, helper, &r, "load", "-endpoints", endpoints(ms), "-op", op,
		"-clients", strconv.Itoa(clients), "-duration", dur.String())
	return r, err
}

// etcdLeaderKill has the helper kill the leader and time the first write
// through the other members.
func etcdLeaderKill(ctx context.Context, helper string, ms []*etcdMember) (time.Duration, error) {
	leader, err := etcdLeader(ctx, ms)
	if err != nil {
		return 0, err
	}
	var others []*etcdMember
	for _, m := range ms {
		if m != leader {
			others = append(others, m)
		}
	}
	var t struct {
		MS float64 `json:"ms"`
	}
	err = runHelper(ctx, helper, &t, "killwrite", "-pid", strconv.Itoa(leader.p.cmd.Process.Pid),
		"-endpoints", endpoints(others))
	if err != nil {
		return 0, err // the leader may still run: the cluster's stop kills it
	}
	_ = leader.p.wait(time.Minute) // killed: its exit status is SIGKILL's
	return time.Duration(t.MS * float64(time.Millisecond)), nil
}

// etcdStartToWrite has the helper start a one-member etcd and time its
// first write.
func etcdStartToWrite(ctx context.Context, helper, bin, dir string) (time.Duration, error) {
	var t struct {
		MS float64 `json:"ms"`
	}
	err := runHelper(ctx, helper, &t, "startwrite", "-etcd", bin, "-dir", filepath.Join(dir, "solo"))
	return time.Duration(t.MS * float64(time.Millisecond)), err
}

// runHelper runs the etcd helper and decodes its one JSON line into out.
func runHelper(ctx context.Context, helper string, out any, args ...string) error {
	cmd := exec.CommandContext(ctx, helper, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("etcdload %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return json.Unmarshal(b, out)
}

// buildHelper builds the etcd helper from its module at src into dir.
func buildHelper(ctx context.Context, src, dir string) (string, error) {
	out := filepath.Join(dir, "etcdload")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the etcd helper in %s: %w: %s", src, err, b)
	}
	return out, nil
}

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewClientAddresses(t *testing.T) {
	for _, ok := range []string{"/run/graft.sock", "rel/graft.sock", "http://127.0.0.1:7948", "http://localhost:1/"} {
		c, err := NewClient(ok)
		if err != nil {
			t.Errorf("%q: %v", ok, err)
			continue
		}
		c.Close()
	}
	for _, bad := range []string{"", "https://127.0.0.1:1", "unix:///x", "http://", "http://h:1/path", "http://h:1/?q"} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// With no agent, the client says so, naming the address.
func TestClientNoAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "graft.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for _, addr := range []string{sock, closed} {
		c, err := NewClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.Get(t.Context(), "k")
		if !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: %v, want ErrNoAgent naming the address", addr, err)
		}
		if _, err := c.Watch(t.Context(), "", 0); !errors.Is(err, ErrNoAgent) {
			t.Errorf("%s: watch: %v, want ErrNoAgent", addr, err)
		}
		c.Close()
	}
}

func TestKVJSONValueEncoding(t *testing.T) {
	cases := []struct {
		value []byte
		field string
	}{
		{[]byte("text"), `"value":"text"`},
		{[]byte{}, `"value":""`},
		{[]byte("ünïcode\n"), `"value":"ünïcode\n"`},
		{[]byte{0xff, 0xfe}, `"value_base64":"//4="`},
	}
	for _, tc := range cases {
		raw, err := json.Marshal(KV{Key: "k", Value: tc.value, ModRev: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), tc.field) {
			t.Errorf("%q encodes as %s, want it to hold %s", tc.value, raw, tc.field)
		}
		if strings.Contains(string(raw), `"value"`) == strings.Contains(string(raw), `"value_base64"`) {
			t.Errorf("%s: want exactly one of value and value_base64", raw)
		}
		var back KV
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.Value, tc.value) || back.Key != "k" || back.ModRev != 3 {
			t.Errorf("%s decodes as %+v", raw, back)
		}
	}
	var kv KV
	if err := json.Unmarshal([]byte(`{"key":"k","value":"a","value_base64":"YQ=="}`), &kv); err == nil {
		t.Error("both value fields accepted")
	}
	if err := json.Unmarshal([]byte(`{"key":"k","value_base64":"!!"}`), &kv); err == nil {
		t.Error("bad base64 accepted")
	}
}

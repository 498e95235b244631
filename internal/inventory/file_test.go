package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFile(t *testing.T) {
	yes := true
	got, err := ParseFile("inv.yaml", []byte(`
nodes:
- name: cp-1
  address: 192.0.2.10:2222
  user: ubuntu
  sudo: true
- name: cp-2
  executor: local
- name: win-1
  skip: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{Source: "inv.yaml", Nodes: []Entry{
		{Name: "cp-1", Address: "192.0.2.10:2222", User: "ubuntu", Sudo: &yes},
		{Name: "cp-2", Executor: ExecutorLocal},
		{Name: "win-1", Skip: true},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseFile (-want +got):\n%s", diff)
	}
}

func TestParseFileRefusesBadEntries(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{name: "not YAML", yaml: "nodes: [", want: "inventory file inv.yaml: not a valid inventory"},
		{name: "unknown field", yaml: "nodes:\n- name: a\n  adress: x\n", want: `unknown field "adress"`},
		{name: "nodes not a list", yaml: "nodes: cp-1\n", want: "inventory file inv.yaml: not a valid inventory"},
		{name: "missing name", yaml: "nodes:\n- address: 192.0.2.1\n", want: "inventory file inv.yaml: nodes[0]: name is required"},
		{name: "duplicate name", yaml: "nodes:\n- name: a\n- name: b\n- name: a\n", want: `nodes[2] (a): node "a" is listed twice (also nodes[0])`},
		{name: "unknown executor", yaml: "nodes:\n- name: a\n  executor: job\n", want: `nodes[0] (a): executor "job" is not one of "ssh" or "local"`},
		{name: "port out of range", yaml: "nodes:\n- name: a\n  port: 70000\n", want: "nodes[0] (a): port 70000 is out of range"},
		{name: "negative port", yaml: "nodes:\n- name: a\n  port: -1\n", want: "nodes[0] (a): port -1 is out of range"},
		{name: "port twice", yaml: "nodes:\n- name: a\n  address: h:2222\n  port: 22\n", want: `address "h:2222" has port 2222 but port is 22`},
		{name: "local with address", yaml: "nodes:\n- name: a\n  executor: local\n  address: h\n", want: "executor local runs on the node itself"},
		{name: "local with sudo", yaml: "nodes:\n- name: a\n  executor: local\n  sudo: false\n", want: "executor local runs on the node itself"},
		{name: "local with jump", yaml: "nodes:\n- name: a\n  executor: local\n  jump: bastion\n", want: "executor local runs on the node itself"},
		{name: "bad jump", yaml: "nodes:\n- name: a\n  jump: ops@\n", want: `nodes[0] (a): jump "ops@": "ops@" is not [user@]host[:port]; give [user@]host[:port], comma-separated, or none`},
		{name: "skip with address", yaml: "nodes:\n- name: a\n  skip: true\n  address: h\n", want: "a skipped node is not reached"},
		{name: "sudo not a bool", yaml: "nodes:\n- name: a\n  sudo: maybe\n", want: "inventory file inv.yaml: not a valid inventory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile("inv.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("ParseFile accepted a bad inventory")
			}
			if !errors.Is(err, ErrInvalidFile) {
				t.Errorf("error %v does not match ErrInvalidFile", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("nodes:\n- name: a\n  user: root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "good", path: good},
		{name: "missing", path: filepath.Join(dir, "missing.yaml"), wantErr: "inventory file " + filepath.Join(dir, "missing.yaml") + ": cannot read it; check --inventory"},
		{name: "too big", path: big, wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := LoadFile(tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f.Source != tt.path || len(f.Nodes) != 1 {
					t.Errorf("LoadFile = %+v", f)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

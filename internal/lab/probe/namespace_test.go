package probe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestNamespace(t *testing.T) {
	dir := t.TempDir()
	saFile := filepath.Join(dir, "namespace")
	if err := os.WriteFile(saFile, []byte("from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string
		file    string
		want    string
		wantErr []error
	}{
		{name: "environment wins", env: "from-env", file: saFile, want: "from-env"},
		{name: "service account file", env: "", file: saFile, want: "from-file"},
		{name: "blank environment falls back", env: "  ", file: saFile, want: "from-file"},
		{name: "no file", file: filepath.Join(dir, "missing"), wantErr: []error{ErrNoNamespace, fs.ErrNotExist}},
		{name: "empty file", file: emptyFile, wantErr: []error{ErrNoNamespace}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Namespace(tt.env, tt.file)
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error = %v, want %v", err, want)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Namespace = %q, want %q", got, tt.want)
			}
		})
	}
}

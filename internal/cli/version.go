package cli

import (
	"github.com/carotate/carotate/internal/engine"

	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// releaseVersion is set by a release build with
// -ldflags "-X github.com/carotate/carotate/internal/cli.releaseVersion=v1.2.3".
// Without it the version comes from the build information Go embeds: the
// module version under `go install …@version`, else the commit.
var releaseVersion = ""

// Version is what carotate calls itself: in the user agent, in every
// rotation record and in `carotate version`.
var Version = buildInfo().Version

// VersionInfo is what `carotate version` prints.
type VersionInfo struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	Dirty      bool   `json:"dirty,omitempty"`
	GoVersion  string `json:"goVersion"`
	ClientGo   string `json:"clientGoVersion,omitempty"`
}

func buildInfo() VersionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(bi, releaseVersion)
}

// versionFrom reads the version from Go's build information: a release
// version set at link time wins, then the module's own version (go
// install), then "devel+<commit>" with "-dirty" for a modified tree.
func versionFrom(bi *debug.BuildInfo, release string) VersionInfo {
	v := VersionInfo{APIVersion: engine.APIVersion, Kind: "Version", Version: "devel"}
	if bi == nil {
		if release != "" {
			v.Version = release
		}
		return v
	}
	v.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Dirty = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		if d.Path == "k8s.io/client-go" {
			v.ClientGo = d.Version
		}
	}
	switch {
	case release != "":
		v.Version = release
	case bi.Main.Version != "" && bi.Main.Version != "(devel)":
		v.Version = bi.Main.Version
	case v.Commit != "":
		v.Version = "devel+" + shortCommit(v.Commit)
		if v.Dirty {
			v.Version += "-dirty"
		}
	}
	return v
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print carotate's version, commit, Go and client-go versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildInfo()
			switch output {
			case "", OutputText:
				var b strings.Builder
				fmt.Fprintf(&b, "carotate %s\n", v.Version)
				if v.Commit != "" {
					dirty := ""
					if v.Dirty {
						dirty = " (modified tree)"
					}
					fmt.Fprintf(&b, "commit %s%s\n", v.Commit, dirty)
				}
				fmt.Fprintf(&b, "go %s, client-go %s\n", v.GoVersion, v.ClientGo)
				_, err := fmt.Fprint(cmd.OutOrStdout(), b.String())
				return err
			case OutputJSON, OutputYAML:
				return writeDocument(cmd.OutOrStdout(), output, v)
			}
			return fmt.Errorf("--output %q: use text, json or yaml", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", OutputText, "text, json or yaml")
	return cmd
}

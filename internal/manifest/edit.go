package manifest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Edits. Each function below takes a manifest's bytes and returns them
// edited, with changed=false and the input unchanged when the manifest
// already is as asked: an idempotent ensure with no I/O. Only what is asked
// changes. On a manifest kubeadm wrote, setting one flag's value is a
// one-line diff; every other field keeps its place and value (see
// splice.go for how, and for the fallback).
//
// source names the manifest in errors, as for Parse; container is the name
// of the container whose command and args hold the flags, or "" for the
// component's own container (Manifest.Container).

// ErrNoContainer is matched (errors.Is) when the manifest has no container
// of the given name.
var ErrNoContainer = errors.New("no such container")

// ErrInvalidEdit is matched when the edit itself is malformed (a flag name
// with dashes, an annotation key that is not a qualified name): a bug in
// the caller, not in the manifest.
var ErrInvalidEdit = errors.New("invalid manifest edit")

// ErrConflict is matched when the edit would contradict something already
// in the manifest, such as a volume of the same name with another path.
var ErrConflict = errors.New("manifest edit conflicts with the manifest")

// FlagValue returns the value of --flag in the container's command and args
// (the last one, which the component's flag parser keeps) and whether it
// is set at all. A bare boolean "--flag" is set with value "".
func FlagValue(source string, data []byte, container, flag string) (value string, found bool, err error) {
	if err := checkFlagName(source, flag); err != nil {
		return "", false, err
	}
	m, i, err := parseContainer(source, data, container)
	if err != nil {
		return "", false, err
	}
	for _, f := range containerFlags(m, i) {
		if f.Name == flag {
			value, found = f.Value, true
		}
	}
	return value, found, nil
}

// FlagValues returns every value of a repeatable --flag in the
// container's command and args, in order (kube-apiserver takes several
// --service-account-key-file flags and uses them all).
func FlagValues(source string, data []byte, container, flag string) ([]string, error) {
	if err := checkFlagName(source, flag); err != nil {
		return nil, err
	}
	m, i, err := parseContainer(source, data, container)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range containerFlags(m, i) {
		if f.Name == flag {
			out = append(out, f.Value)
		}
	}
	return out, nil
}

// SetFlag ensures the container runs with --flag=value. Every occurrence of
// the flag keeps its position and form ("--flag=value" or "--flag value");
// a flag that is absent is added as "--flag=value" at the end of the
// command (or of args when the container has no command). A container with
// neither is refused: adding a command would replace the image's entrypoint.
func SetFlag(source string, data []byte, container, flag, value string) (out []byte, changed bool, err error) {
	if err := checkFlagName(source, flag); err != nil {
		return nil, false, err
	}
	m, ci, err := parseContainer(source, data, container)
	if err != nil {
		return nil, false, err
	}
	c := m.Pod.Spec.Containers[ci]
	ops := map[string]*seqOps{"command": {}, "args": {}}
	found := false
	for _, f := range containerFlags(m, ci) {
		if f.Name != flag {
			continue
		}
		found = true
		if f.HasValue && f.Value == value {
			continue
		}
		argv := c.Command
		if f.Field == "args" {
			argv = c.Args
		}
		dashes := argv[f.Index][:len(argv[f.Index])-len(strings.TrimLeft(argv[f.Index], "-"))]
		op := ops[f.Field]
		switch {
		case f.Separate && !strings.HasPrefix(value, "-"):
			op.replace(f.Index+1, value)
		case f.Separate:
			// "--flag -x" would read as two flags: join them.
			op.replace(f.Index, dashes+flag+"="+value)
			op.remove(f.Index + 1)
		default:
			op.replace(f.Index, dashes+flag+"="+value)
		}
	}
	if !found {
		switch {
		case len(c.Command) > 0:
			ops["command"].add = append(ops["command"].add, "--"+flag+"="+value)
		case len(c.Args) > 0:
			ops["args"].add = append(ops["args"].add, "--"+flag+"="+value)
		default:
			return nil, false, &Error{Source: source, Detail: fmt.Sprintf("container %q has no command or args to add --%s to", c.Name, flag),
				Err: ErrConflict, Hint: "carotate does not override an image's entrypoint; add the flag by hand"}
		}
	}
	out, changed, err = editFlags(source, data, m, ci, flag, ops)
	if err != nil || !changed {
		return out, changed, err
	}
	if got, ok, err := FlagValue(source, out, c.Name, flag); err != nil || !ok || got != value {
		return nil, false, &Error{Source: source, Detail: fmt.Sprintf("setting --%s in container %q did not take", flag, c.Name), Err: err}
	}
	return out, true, nil
}

// RemoveFlag ensures --flag is not in the container's command or args,
// removing every occurrence with its separate value, if any.
func RemoveFlag(source string, data []byte, container, flag string) (out []byte, changed bool, err error) {
	if err := checkFlagName(source, flag); err != nil {
		return nil, false, err
	}
	m, ci, err := parseContainer(source, data, container)
	if err != nil {
		return nil, false, err
	}
	ops := map[string]*seqOps{"command": {}, "args": {}}
	for _, f := range containerFlags(m, ci) {
		if f.Name != flag {
			continue
		}
		ops[f.Field].remove(f.Index)
		if f.Separate {
			ops[f.Field].remove(f.Index + 1)
		}
	}
	return editFlags(source, data, m, ci, flag, ops)
}

// SetAnnotation ensures the pod's metadata.annotations[key] is value,
// creating the map if needed. Bumping an annotation is how carotate makes
// the kubelet restart a static pod: the kubelet hashes the manifest's
// content, so touching the file does nothing.
func SetAnnotation(source string, data []byte, key, value string) (out []byte, changed bool, err error) {
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return nil, false, fmt.Errorf("manifest %s: annotation key %q: %s: %w", source, key, strings.Join(errs, "; "), ErrInvalidEdit)
	}
	m, err := Parse(source, data)
	if err != nil {
		return nil, false, err
	}
	if v, ok := m.Annotations[key]; ok && v == value {
		return data, false, nil
	}
	want, err := decodeDocument(data)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "is not valid yaml", Err: err}
	}
	metadata, _ := want["metadata"].(map[string]any)
	if metadata == nil {
		metadata = map[string]any{}
		want["metadata"] = metadata
	}
	annotations, _ := metadata["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
		metadata["annotations"] = annotations
	}
	annotations[key] = value

	keyText, err := renderScalar(key)
	if err != nil {
		return nil, false, fmt.Errorf("manifest %s: annotation key %q %s: %w", source, key, err.Error(), ErrInvalidEdit)
	}
	valueText, err := renderScalar(value)
	if err != nil {
		return nil, false, fmt.Errorf("manifest %s: annotation %s value %s: %w", source, key, err.Error(), ErrInvalidEdit)
	}
	out, err = writeEdited(data, want, func(s *splicer) error {
		metadata := mapValue(s.root, "metadata")
		annotations := mapValue(metadata, "annotations")
		if annotations == nil {
			return s.insertKey(metadata, "annotations", []string{"annotations:", "  " + keyText + ": " + valueText})
		}
		if v := mapValue(annotations, key); v != nil {
			return s.replaceScalar(v, valueText)
		}
		return s.insertKey(annotations, key, []string{keyText + ": " + valueText})
	})
	if err != nil {
		return nil, false, &Error{Source: source, Detail: fmt.Sprintf("cannot set annotation %s", key), Err: err}
	}
	return checked(source, out)
}

// seqOps are edits of one string sequence (a container's command or args),
// by index into the sequence as it is.
type seqOps struct {
	replaced map[int]string
	removed  map[int]bool
	add      []string
	// texts and addTexts are replaced and add as YAML scalars.
	texts    map[int]string
	addTexts []string
}

func (o *seqOps) render() error {
	o.texts = map[int]string{}
	for i, v := range o.replaced {
		text, err := renderScalar(v)
		if err != nil {
			return fmt.Errorf("value %q %s: %w", v, err.Error(), ErrInvalidEdit)
		}
		o.texts[i] = text
	}
	o.addTexts = nil
	for _, v := range o.add {
		text, err := renderScalar(v)
		if err != nil {
			return fmt.Errorf("value %q %s: %w", v, err.Error(), ErrInvalidEdit)
		}
		o.addTexts = append(o.addTexts, text)
	}
	return nil
}

func (o *seqOps) replace(i int, s string) {
	if o.replaced == nil {
		o.replaced = map[int]string{}
	}
	o.replaced[i] = s
}

func (o *seqOps) remove(i int) {
	if o.removed == nil {
		o.removed = map[int]bool{}
	}
	o.removed[i] = true
}

func (o *seqOps) empty() bool {
	return len(o.replaced) == 0 && len(o.removed) == 0 && len(o.add) == 0
}

// applyTo edits a generic sequence; elements not edited stay as they are.
func (o *seqOps) applyTo(items []any) []any {
	out := make([]any, 0, len(items)+len(o.add))
	for i, item := range items {
		if o.removed[i] {
			continue
		}
		if s, ok := o.replaced[i]; ok {
			item = s
		}
		out = append(out, item)
	}
	for _, s := range o.add {
		out = append(out, s)
	}
	return out
}

// editFlags applies ops to the container's command and args and checks
// that every other flag still reads the same.
func editFlags(source string, data []byte, m *Manifest, ci int, flag string, ops map[string]*seqOps) ([]byte, bool, error) {
	if ops["command"].empty() && ops["args"].empty() {
		return data, false, nil
	}
	want, err := decodeDocument(data)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "is not valid yaml", Err: err}
	}
	container, err := genericContainer(want, ci)
	if err != nil {
		return nil, false, &Error{Source: source, Detail: "has an unexpected shape", Err: err}
	}
	for _, field := range []string{"command", "args"} {
		op := ops[field]
		if op.empty() {
			continue
		}
		items, _ := container[field].([]any)
		container[field] = op.applyTo(items)
		if err := op.render(); err != nil {
			return nil, false, fmt.Errorf("manifest %s: --%s: %w", source, flag, err)
		}
	}
	out, err := writeEdited(data, want, func(s *splicer) error {
		cn, err := s.containerNode(ci)
		if err != nil {
			return err
		}
		for field, op := range ops {
			if op.empty() {
				continue
			}
			seq := mapValue(cn, field)
			if seq == nil {
				return errNoSplice
			}
			for i := range op.replaced {
				if i >= len(seq.Content) {
					return errNoSplice
				}
				if err := s.replaceScalar(seq.Content[i], op.texts[i]); err != nil {
					return err
				}
			}
			for i := range op.removed {
				if err := s.removeItem(seq, i); err != nil {
					return err
				}
			}
			for _, text := range op.addTexts {
				if err := s.appendItem(seq, []string{text}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, &Error{Source: source, Detail: fmt.Sprintf("cannot edit the flags of container %q", m.Pod.Spec.Containers[ci].Name), Err: err}
	}
	out, changed, err := checked(source, out)
	if err != nil {
		return nil, false, err
	}
	// Removing "--a b" from "--x --a b c" would make c the value of --x.
	after, err := Parse(source, out)
	if err != nil {
		return nil, false, err
	}
	edited := map[string]bool{flag: true}
	if !reflect.DeepEqual(otherFlags(containerFlags(m, ci), edited), otherFlags(containerFlags(after, ci), edited)) {
		return nil, false, &Error{Source: source, Detail: fmt.Sprintf("editing the flags of container %q would change how its other flags read", m.Pod.Spec.Containers[ci].Name),
			Err: ErrConflict, Hint: "its command holds values that are not flags; edit it by hand"}
	}
	return out, changed, nil
}

// otherFlags lists, in order, the flags not named in skip, without their
// positions.
func otherFlags(flags []Flag, skip map[string]bool) []Flag {
	var out []Flag
	for _, f := range flags {
		if !skip[f.Name] {
			out = append(out, Flag{Name: f.Name, Value: f.Value, HasValue: f.HasValue})
		}
	}
	return out
}

// checked makes sure an edited manifest still parses.
func checked(source string, out []byte) ([]byte, bool, error) {
	if _, err := Parse(source, out); err != nil {
		return nil, false, fmt.Errorf("manifest %s: the edited manifest does not parse: %w", source, err)
	}
	return out, true, nil
}

func genericContainer(doc map[string]any, i int) (map[string]any, error) {
	spec, _ := doc["spec"].(map[string]any)
	containers, _ := spec["containers"].([]any)
	if i >= len(containers) {
		return nil, errors.New("spec.containers is not a list of containers")
	}
	c, ok := containers[i].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("spec.containers[%d] is not a mapping", i)
	}
	return c, nil
}

// parseContainer parses the manifest and finds the container by name; ""
// is the component's container.
func parseContainer(source string, data []byte, container string) (*Manifest, int, error) {
	m, err := Parse(source, data)
	if err != nil {
		return nil, 0, err
	}
	if container == "" {
		return m, m.Container, nil
	}
	var names []string
	for i, c := range m.Pod.Spec.Containers {
		if c.Name == container {
			return m, i, nil
		}
		names = append(names, fmt.Sprintf("%q", c.Name))
	}
	return nil, 0, &Error{Source: source, Detail: fmt.Sprintf("has no container %q", container), Err: ErrNoContainer,
		Hint: "its containers are " + strings.Join(names, ", ")}
}

func containerFlags(m *Manifest, i int) []Flag {
	if i == m.Container {
		return m.Flags
	}
	c := m.Pod.Spec.Containers[i]
	return append(parseFlags("command", c.Command, true), parseFlags("args", c.Args, false)...)
}

func checkFlagName(source, flag string) error {
	switch {
	case flag == "":
		return fmt.Errorf("manifest %s: empty flag name: %w", source, ErrInvalidEdit)
	case strings.HasPrefix(flag, "-"):
		return fmt.Errorf("manifest %s: flag name %q must be given without dashes: %w", source, flag, ErrInvalidEdit)
	case strings.ContainsAny(flag, "= \t\n"), slices.ContainsFunc([]rune(flag), func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("manifest %s: flag name %q holds '=', a space or a control character: %w", source, flag, ErrInvalidEdit)
	}
	return nil
}

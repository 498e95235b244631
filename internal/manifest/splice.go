package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// The edit functions change a manifest in two ways at once: on the generic
// document (what the kubelet will read) and on the text. The text edit
// replaces, inserts or deletes whole scalars and lines at positions the
// YAML parser reports, so a one-flag change is a one-line diff and nothing
// else moves. The generic edit is the oracle: a text edit is kept only if
// the result reads back as exactly the edited document. Otherwise (flow
// style, multi-line scalars, anything the splicer does not handle) the
// edited document is written out whole, the way kubeadm writes manifests:
// sorted keys, no comments.

// errNoSplice says the text cannot be edited in place; the caller
// re-encodes the document instead.
var errNoSplice = errors.New("cannot edit the text in place")

// decodeDocument reads a manifest as generic data, keeping numbers exact.
func decodeDocument(data []byte) (map[string]any, error) {
	var doc map[string]any
	err := yaml.Unmarshal(data, &doc, func(d *json.Decoder) *json.Decoder {
		d.UseNumber()
		return d
	})
	return doc, err
}

// writeEdited returns the edited text: the splice when it reads back as
// want, else want re-encoded.
func writeEdited(data []byte, want map[string]any, edit func(*splicer) error) ([]byte, error) {
	if s, err := newSplicer(data); err == nil {
		if err := edit(s); err == nil {
			if out, err := s.apply(); err == nil && readsAs(out, want) {
				return out, nil
			}
		}
	}
	out, err := yaml.Marshal(want)
	if err != nil {
		return nil, err
	}
	if !readsAs(out, want) {
		return nil, errors.New("the edited document does not read back as written")
	}
	return out, nil
}

func readsAs(out []byte, want map[string]any) bool {
	got, err := decodeDocument(out)
	return err == nil && reflect.DeepEqual(got, want)
}

// renderScalar writes s as a single-line YAML scalar that reads back as the
// string s: the way kubeadm's YAML library writes it when that fits on one
// line, else double-quoted.
func renderScalar(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("is not valid utf-8")
	}
	if b, err := yaml.Marshal(s); err == nil {
		text := strings.TrimSuffix(string(b), "\n")
		if !strings.Contains(text, "\n") && scalarReadsAs(text, s) {
			return text, nil
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err == nil {
		text := strings.TrimSuffix(buf.String(), "\n")
		if scalarReadsAs(text, s) {
			return text, nil
		}
	}
	return "", errors.New("cannot be written as a yaml string")
}

func scalarReadsAs(text, s string) bool {
	var v any
	return yaml.Unmarshal([]byte(text), &v) == nil && v == s
}

// splicer collects text edits on one manifest.
type splicer struct {
	data       []byte
	root       *yaml3.Node   // the document's top-level mapping
	order      []*yaml3.Node // every node, in document order
	index      map[*yaml3.Node]int
	end        []int // end[i]: index in order just past node i's subtree
	lineStarts []int
	edits      []textEdit
}

type textEdit struct {
	start, end int
	text       string
}

func newSplicer(data []byte) (*splicer, error) {
	// Line breaks other than \n, and a byte order mark, shift the parser's
	// positions against ours.
	if bytes.ContainsAny(data, "\r\u0085\u2028\u2029\ufeff") {
		return nil, errNoSplice
	}
	var doc yaml3.Node
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		return nil, errNoSplice
	}
	if doc.Kind != yaml3.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml3.MappingNode {
		return nil, errNoSplice
	}
	s := &splicer{data: data, root: doc.Content[0], index: map[*yaml3.Node]int{}, lineStarts: []int{0}}
	for i, b := range data {
		if b == '\n' {
			s.lineStarts = append(s.lineStarts, i+1)
		}
	}
	s.walk(s.root)
	return s, nil
}

func (s *splicer) walk(n *yaml3.Node) {
	i := len(s.order)
	s.order = append(s.order, n)
	s.end = append(s.end, 0)
	s.index[n] = i
	for _, c := range n.Content {
		s.walk(c)
	}
	s.end[i] = len(s.order)
}

// offset converts a parser position (1-based line, 1-based column in
// characters) to a byte offset.
func (s *splicer) offset(line, column int) (int, error) {
	if line < 1 || line > len(s.lineStarts) || column < 1 {
		return 0, errNoSplice
	}
	off := s.lineStarts[line-1]
	for range column - 1 {
		if off >= len(s.data) || s.data[off] == '\n' {
			return 0, errNoSplice
		}
		_, size := utf8.DecodeRune(s.data[off:])
		off += size
	}
	return off, nil
}

func (s *splicer) lineEnd(off int) int {
	if i := bytes.IndexByte(s.data[off:], '\n'); i >= 0 {
		return off + i
	}
	return len(s.data)
}

// linePrefix is the text of n's line before n.
func (s *splicer) linePrefix(n *yaml3.Node) (string, error) {
	off, err := s.offset(n.Line, n.Column)
	if err != nil {
		return "", err
	}
	return string(s.data[s.lineStarts[n.Line-1]:off]), nil
}

// afterSubtree is the offset of the line where the next node after n's
// subtree starts, or the end of the text: where a line-based insertion
// after n goes and where deleting n's lines stops.
func (s *splicer) afterSubtree(n *yaml3.Node) (int, error) {
	i, ok := s.index[n]
	if !ok {
		return 0, errNoSplice
	}
	next := s.end[i]
	if next >= len(s.order) {
		return len(s.data), nil
	}
	prefix, err := s.linePrefix(s.order[next])
	if err != nil {
		return 0, err
	}
	if strings.Trim(prefix, " -") != "" {
		return 0, errNoSplice
	}
	return s.lineStarts[s.order[next].Line-1], nil
}

// replaceScalar replaces the text of a single-line scalar.
func (s *splicer) replaceScalar(n *yaml3.Node, text string) error {
	if n.Kind != yaml3.ScalarNode || n.Style&(yaml3.LiteralStyle|yaml3.FoldedStyle) != 0 || n.LineComment != "" {
		return errNoSplice
	}
	start, err := s.offset(n.Line, n.Column)
	if err != nil {
		return err
	}
	end := start + len(bytes.TrimRight(s.data[start:s.lineEnd(start)], " \t"))
	s.edits = append(s.edits, textEdit{start: start, end: end, text: text})
	return nil
}

// blockItemPrefix returns the "  - " before a block sequence's item.
func (s *splicer) blockItemPrefix(seq, item *yaml3.Node) (string, error) {
	if seq.Kind != yaml3.SequenceNode || seq.Style&yaml3.FlowStyle != 0 {
		return "", errNoSplice
	}
	prefix, err := s.linePrefix(item)
	if err != nil {
		return "", err
	}
	if rest := strings.TrimLeft(prefix, " "); !strings.HasPrefix(rest, "-") || strings.Trim(rest[1:], " ") != "" || rest[1:] == "" {
		return "", errNoSplice
	}
	return prefix, nil
}

// removeItem deletes the lines of a block sequence's item.
func (s *splicer) removeItem(seq *yaml3.Node, i int) error {
	if seq == nil || i < 0 || i >= len(seq.Content) {
		return errNoSplice
	}
	item := seq.Content[i]
	if _, err := s.blockItemPrefix(seq, item); err != nil {
		return err
	}
	end, err := s.afterSubtree(item)
	if err != nil {
		return err
	}
	s.edits = append(s.edits, textEdit{start: s.lineStarts[item.Line-1], end: end})
	return nil
}

// appendItem adds an item after the last one of a block sequence. lines
// is the item's YAML, one line each, indented relative to the item.
func (s *splicer) appendItem(seq *yaml3.Node, lines []string) error {
	if seq == nil || seq.Kind != yaml3.SequenceNode || len(seq.Content) == 0 {
		return errNoSplice
	}
	last := seq.Content[len(seq.Content)-1]
	prefix, err := s.blockItemPrefix(seq, last)
	if err != nil {
		return err
	}
	at, err := s.afterSubtree(last)
	if err != nil {
		return err
	}
	return s.insertLines(at, prefix, strings.Repeat(" ", len(prefix)), lines)
}

// insertKey adds key with its value (lines: "key: value", or "key:" and
// the indented value) to a block mapping, before the first key that sorts
// after it, as kubeadm's sorted output would have it.
func (s *splicer) insertKey(m *yaml3.Node, key string, lines []string) error {
	if m == nil || m.Kind != yaml3.MappingNode || m.Style&yaml3.FlowStyle != 0 || len(m.Content) < 2 {
		return errNoSplice
	}
	indent := strings.Repeat(" ", m.Content[0].Column-1)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Value <= key {
			continue
		}
		prefix, err := s.linePrefix(k)
		if err != nil {
			return err
		}
		if prefix != indent {
			return errNoSplice // the key shares its line with a "- "
		}
		return s.insertLines(s.lineStarts[k.Line-1], indent, indent, lines)
	}
	at, err := s.afterSubtree(m.Content[len(m.Content)-1])
	if err != nil {
		return err
	}
	return s.insertLines(at, indent, indent, lines)
}

func (s *splicer) insertLines(at int, first, rest string, lines []string) error {
	var b strings.Builder
	if at == len(s.data) && at > 0 && s.data[at-1] != '\n' {
		b.WriteByte('\n')
	}
	for i, l := range lines {
		if i == 0 {
			b.WriteString(first)
		} else {
			b.WriteString(rest)
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	s.edits = append(s.edits, textEdit{start: at, end: at, text: b.String()})
	return nil
}

// apply returns the text with every edit made.
func (s *splicer) apply() ([]byte, error) {
	edits := append([]textEdit(nil), s.edits...)
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	pos := 0
	for _, e := range edits {
		if e.start < pos || e.end < e.start || e.end > len(s.data) {
			return nil, fmt.Errorf("overlapping edits: %w", errNoSplice)
		}
		out.Write(s.data[pos:e.start])
		out.WriteString(e.text)
		pos = e.end
	}
	out.Write(s.data[pos:])
	return out.Bytes(), nil
}

// mapValue returns the value of key in a mapping node, or nil.
func mapValue(m *yaml3.Node, key string) *yaml3.Node {
	if m == nil || m.Kind != yaml3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml3.ScalarNode && k.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// containerNode returns the mapping of the container at index i.
func (s *splicer) containerNode(i int) (*yaml3.Node, error) {
	containers := mapValue(mapValue(s.root, "spec"), "containers")
	if containers == nil || containers.Kind != yaml3.SequenceNode || i >= len(containers.Content) {
		return nil, errNoSplice
	}
	return containers.Content[i], nil
}

// yamlLines renders v as YAML lines, the way kubeadm's library does.
func yamlLines(v any) ([]string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), nil
}

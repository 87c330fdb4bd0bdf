package faults

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A fault file is YAML or JSON (JSON is read as the YAML it also is):
//
//	seed: 42
//	faults:
//	  - kind: reject
//	    thing: pump-1
//	    operation: update
//	    code: VersionMismatch
//	    count: 1
//	  - kind: drop
//	    topic: notify-next
//	    probability: 0.5

// ReadFile reads and checks a fault file.
func ReadFile(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fault file: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a fault file's contents; name names it in errors, which
// give the line and field at fault. Nothing is put in force: pass the
// plan to Set.Replace.
func Parse(data []byte, name string) (*Plan, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("fault file %s: line %d: %s", name, line, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("fault file %s: %w", name, err)
	}
	plan := &Plan{}
	if len(doc.Content) == 0 {
		return plan, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "the file must be a mapping with seed and faults")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "seed":
			if err := v.Decode(&plan.Seed); err != nil {
				return nil, fail(v.Line, "seed: %q is not a whole number from 0 up", v.Value)
			}
		case "faults":
			if v.Kind != yaml.SequenceNode {
				return nil, fail(v.Line, "faults must be a list")
			}
			for j, item := range v.Content {
				f, err := decodeFault(item)
				if err != nil {
					var fe *FieldError
					line := item.Line
					if errors.As(err, &fe) {
						line = keyLine(item, fe.Field)
					}
					return nil, fail(line, "faults[%d]: %v", j, err)
				}
				plan.Faults = append(plan.Faults, f)
			}
		default:
			return nil, fail(k.Line, "unknown key %q (the file has seed and faults)", k.Value)
		}
	}
	return plan, nil
}

// decodeFault decodes and checks one fault, refusing unknown keys.
func decodeFault(n *yaml.Node) (Fault, error) {
	var f Fault
	if n.Kind != yaml.MappingNode {
		return f, errors.New("a fault must be a mapping of kind, thing, operation ...")
	}
	known := yamlKeys(reflect.TypeFor[Fault]())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known, k.Value) {
			return f, &FieldError{Field: k.Value, Err: fmt.Errorf("unknown key (a fault has %s)", strings.Join(known, ", "))}
		}
		one := reflect.New(reflect.TypeFor[Fault]())
		sub := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}
		if err := sub.Decode(one.Interface()); err != nil {
			return f, &FieldError{Field: k.Value, Err: fmt.Errorf("%q: %s", v.Value, yamlProblem(err))}
		}
	}
	if err := n.Decode(&f); err != nil {
		return f, err
	}
	return f, f.Check()
}

// yamlProblem is a YAML decoding error without its "yaml: line N:" prefix,
// which the caller gives.
func yamlProblem(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "line ") {
		return msg[i+2:]
	}
	return msg
}

// yamlKeys returns the yaml keys of a struct's fields, in order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// keyLine returns the line of key in mapping n, or n's own line.
func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

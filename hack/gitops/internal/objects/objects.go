// Package objects reads Kubernetes objects the way the tools under test receive them: as
// unstructured content decoded from JSON (integers as int64, as in a client-go cache).
package objects

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Read returns every object in the named files (stdin when there are none or the name is
// "-"). Each file is a stream of YAML documents or JSON values; a `List` (kind ending in
// "List" with `items`) or a JSON array contributes its items.
func Read(paths []string) ([]*unstructured.Unstructured, error) {
	if len(paths) == 0 {
		paths = []string{"-"}
	}
	var all []*unstructured.Unstructured
	for _, path := range paths {
		var in io.Reader = os.Stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			in = f
		}
		objs, err := decode(in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, objs...)
	}
	return all, nil
}

func decode(in io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(in), 4096)
	var out []*unstructured.Unstructured
	for {
		var raw any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		objs, err := flatten(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
}

// flatten turns one decoded document into objects, re-encoding it so that unstructured's
// own JSON decoding (which keeps integers as int64) produces the content.
func flatten(raw any) ([]*unstructured.Unstructured, error) {
	switch v := raw.(type) {
	case nil:
		return nil, nil
	case []any:
		var out []*unstructured.Unstructured
		for _, item := range v {
			objs, err := flatten(item)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	case map[string]any:
		if items, ok := v["items"].([]any); ok {
			return flatten(items)
		}
		data, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		return []*unstructured.Unstructured{u}, nil
	default:
		return nil, fmt.Errorf("expected a Kubernetes object, got %T", raw)
	}
}

// Verdict is what one tool says of one object.
type Verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Judge asks judge about every object in paths and prints one JSON line per object:
//
//	{"kind":"…","namespace":"…","name":"…","status":"…","message":"…"}
//
// An object judge fails on is named on stderr, and the exit status is then 1; objects that
// can't be read at all exit 2. tool prefixes the error lines.
func Judge(tool string, paths []string, judge func(*unstructured.Unstructured) (Verdict, error)) {
	objs, err := Read(paths)
	if err != nil {
		Fail(tool, 2, "reading objects: %v", err)
	}
	out := json.NewEncoder(os.Stdout)
	failed := false
	for _, obj := range objs {
		v, err := judge(obj)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s %s/%s: %v\n", tool, obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
			failed = true
			continue
		}
		_ = out.Encode(struct {
			Kind      string `json:"kind"`
			Namespace string `json:"namespace,omitempty"`
			Name      string `json:"name"`
			Verdict
		}{obj.GetKind(), obj.GetNamespace(), obj.GetName(), v})
	}
	if failed {
		os.Exit(1)
	}
}

// Fail prints "tool: message" on stderr and exits with code.
func Fail(tool string, code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, tool+": "+format+"\n", args...)
	os.Exit(code)
}

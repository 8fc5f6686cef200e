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

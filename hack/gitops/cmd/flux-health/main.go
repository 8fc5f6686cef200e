// Command flux-health evaluates a Flux Kustomization's spec.healthCheckExprs on Kubernetes
// objects with Flux's own evaluator (github.com/fluxcd/pkg/runtime/cel, the code
// kustomize-controller runs), and prints the kstatus status it yields: one JSON object per
// line,
//
//	{"kind":"…","namespace":"…","name":"…","status":"Current"}
//
// Usage: flux-health -kustomization KUSTOMIZATION.yaml [OBJECTS…]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"actor-token-operator/hack/gitops/internal/objects"
)

type line struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
}

func main() {
	path := flag.String("kustomization", "", "a Flux Kustomization (YAML) whose spec.healthCheckExprs to use")
	flag.Parse()
	if *path == "" {
		fail(2, "-kustomization is required")
	}
	evaluators, err := readEvaluators(*path)
	if err != nil {
		fail(2, "%s: %v", *path, err)
	}
	objs, err := objects.Read(flag.Args())
	if err != nil {
		fail(2, "reading objects: %v", err)
	}
	out := json.NewEncoder(os.Stdout)
	failed := false
	for _, obj := range objs {
		evaluator, ok := evaluators[obj.GetAPIVersion()+"/"+obj.GetKind()]
		if !ok {
			fmt.Fprintf(os.Stderr, "flux-health: no healthCheckExprs for %s %s\n", obj.GetAPIVersion(), obj.GetKind())
			failed = true
			continue
		}
		res, err := evaluator.Evaluate(context.Background(), obj)
		if err != nil {
			fmt.Fprintf(os.Stderr, "flux-health: %s %s/%s: %v\n", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
			failed = true
			continue
		}
		_ = out.Encode(line{Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName(), Status: res.Status.String()})
	}
	if failed {
		os.Exit(1)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "flux-health: "+format+"\n", args...)
	os.Exit(code)
}

// readEvaluators compiles each healthCheckExprs entry of the Kustomization, keyed by
// "<apiVersion>/<kind>".
func readEvaluators(path string) (map[string]*cel.StatusEvaluator, error) {
	objs, err := objects.Read([]string{path})
	if err != nil {
		return nil, err
	}
	var ks *unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "Kustomization" && obj.GroupVersionKind().Group == "kustomize.toolkit.fluxcd.io" {
			ks = obj
		}
	}
	if ks == nil {
		return nil, fmt.Errorf("no kustomize.toolkit.fluxcd.io Kustomization in it")
	}
	raw, found, err := unstructured.NestedSlice(ks.Object, "spec", "healthCheckExprs")
	if err != nil || !found {
		return nil, fmt.Errorf("no spec.healthCheckExprs (%v)", err)
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var exprs []kustomize.CustomHealthCheck
	if err := json.Unmarshal(data, &exprs); err != nil {
		return nil, err
	}
	evaluators := map[string]*cel.StatusEvaluator{}
	for _, e := range exprs {
		evaluator, err := cel.NewStatusEvaluator(&e.HealthCheckExpressions)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", e.APIVersion, e.Kind, err)
		}
		evaluators[e.APIVersion+"/"+e.Kind] = evaluator
	}
	return evaluators, nil
}

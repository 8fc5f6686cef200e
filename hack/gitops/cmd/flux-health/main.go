// Command flux-health evaluates a Flux Kustomization's spec.healthCheckExprs on Kubernetes
// objects with Flux's own evaluator (github.com/fluxcd/pkg/runtime/cel, the code
// kustomize-controller runs), and prints the kstatus status it yields: one JSON object per
// line,
//
//	{"kind":"…","namespace":"…","name":"…","status":"Current","message":""}
//
// Usage: flux-health -kustomization KUSTOMIZATION.yaml [OBJECTS…]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"actor-token-operator/hack/gitops/internal/objects"
)

func main() {
	path := flag.String("kustomization", "", "a Flux Kustomization (YAML) whose spec.healthCheckExprs to use")
	flag.Parse()
	if *path == "" {
		objects.Fail(tool, 2, "-kustomization is required")
	}
	evaluators, err := readEvaluators(*path)
	if err != nil {
		objects.Fail(tool, 2, "%s: %v", *path, err)
	}
	objects.Judge(tool, flag.Args(), func(obj *unstructured.Unstructured) (objects.Verdict, error) {
		evaluator, ok := evaluators[obj.GetAPIVersion()+"/"+obj.GetKind()]
		if !ok {
			return objects.Verdict{}, fmt.Errorf("no healthCheckExprs for %s %s", obj.GetAPIVersion(), obj.GetKind())
		}
		res, err := evaluator.Evaluate(context.Background(), obj)
		if err != nil {
			return objects.Verdict{}, err
		}
		return objects.Verdict{Status: res.Status.String()}, nil
	})
}

const tool = "flux-health"

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

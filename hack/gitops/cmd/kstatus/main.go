// Command kstatus prints, for each Kubernetes object it reads, the status that kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library Flux's health checks are built on)
// computes for it: one JSON object per line,
//
//	{"kind":"…","namespace":"…","name":"…","status":"Current","message":"…"}
//
// Usage: kstatus [FILE…]   (YAML or JSON, one or many objects; stdin when no FILE)
package main

import (
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"actor-token-operator/hack/gitops/internal/objects"
)

func main() {
	objects.Judge("kstatus", os.Args[1:], func(obj *unstructured.Unstructured) (objects.Verdict, error) {
		res, err := status.Compute(obj)
		if err != nil {
			return objects.Verdict{}, err
		}
		return objects.Verdict{Status: res.Status.String(), Message: res.Message}, nil
	})
}

// Command kstatus prints, for each Kubernetes object it reads, the status that kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library Flux's health checks are built on)
// computes for it: one JSON object per line,
//
//	{"kind":"…","namespace":"…","name":"…","status":"Current","message":"…"}
//
// Usage: kstatus [FILE…]   (YAML or JSON, one or many objects; stdin when no FILE)
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"actor-token-operator/hack/gitops/internal/objects"
)

type line struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	objs, err := objects.Read(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: reading objects: %v\n", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	failed := false
	for _, obj := range objs {
		res, err := status.Compute(obj)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s %s/%s: %v\n", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
			failed = true
			continue
		}
		_ = out.Encode(line{
			Kind:      obj.GetKind(),
			Namespace: obj.GetNamespace(),
			Name:      obj.GetName(),
			Status:    res.Status.String(),
			Message:   res.Message,
		})
	}
	if failed {
		os.Exit(1)
	}
}

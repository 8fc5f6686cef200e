# Entry points for people and CI. `make test` is what CI runs (.ci/run) and what a new user runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export ENVTEST_DIR ?= $(CURDIR)/.build/envtest
CARGO ?= cargo

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## build (once) and cache kube-apiserver, kube-controller-manager, kubectl, etcd and helm
	@hack/build-tools.sh >/dev/null

.PHONY: envtest
envtest: ## start the local control plane and print its kubeconfig path
	@hack/envtest.sh start

.PHONY: envtest-stop
envtest-stop: ## stop the local control plane and everything it started
	@hack/envtest.sh stop

.PHONY: test
test: ## everything: unit, integration (control plane + Clerk simulator) and contract tests
	@hack/test.sh

.PHONY: chaos
chaos: ## fault run: 500 requests, 20 operator SIGKILLs, an apiserver restart; report in tests/chaos/results/
	env -u ENVTEST_DIR CHAOS_RESULTS_DIR=tests/chaos/results RUST_BACKTRACE=0 \
	  $(CARGO) test --test chaos -- --ignored --nocapture full_fault_run

# The release to upgrade from: the last one before requests carried a requester.
UPGRADE_FROM ?= 533781f040d2b64c266ea4247cf96307858f1177

.PHONY: upgrade-test
upgrade-test: tools ## upgrade from release UPGRADE_FROM (its CRDs and operator, built once; needs git history) to this one
	base=$$(UPGRADE_FROM=$(UPGRADE_FROM) hack/upgrade-base.sh) && \
	  UPGRADE_BASE_DIR=$$base env -u ENVTEST_DIR \
	  $(CARGO) test --workspace --test upgrade -- --ignored --nocapture

# chart: the bench measures writes per issue with the chart's admission policies in force too;
# empty: only without them.
BENCH_ADMISSION_POLICIES ?= chart

.PHONY: bench
bench: tools ## speed, cost and memory at scale, beside a bare client and provider-http (own control plane + Clerk simulator); writes tests/bench/results/
	@hack/bench/provider-http.sh >/dev/null
	env -u ENVTEST_DIR BENCH_ADMISSION_POLICIES=$(BENCH_ADMISSION_POLICIES) \
	  $(CARGO) test --release --test bench -- --ignored --nocapture benchmark

.PHONY: e2e-gitops
e2e-gitops: tools ## the GitOps flow with Flux's own controllers (built once from Go modules); report in tests/flux_e2e/results/
	hack/flux/build.sh >/dev/null
	env -u ENVTEST_DIR FLUX_E2E_RESULTS_DIR=tests/flux_e2e/results RUST_BACKTRACE=0 \
	  $(CARGO) test --test flux_e2e -- --ignored --nocapture flux_applies_waits_on_and_prunes_requests

.PHONY: crds
crds: ## regenerate crds/, the chart's CRDs and its admission policies from the Rust types
	$(CARGO) run --quiet -- crd > crds/actortokens.dev.yaml
	cp crds/actortokens.dev.yaml charts/actor-token-operator/crds/actortokens.dev.yaml
	$(CARGO) run --quiet -- admission-policies > charts/actor-token-operator/templates/admission-policies.yaml

# The image's repository and tag; the tag is the crate version, the chart's appVersion.
IMAGE ?= actor-token-operator
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# public: the Dockerfile's base images; local: stand-ins made from Debian 12 packages (buildah).
BASES ?= public

.PHONY: image
image: ## build the image IMAGE:<crate version> from the Dockerfile: Docker if an engine answers, else buildah (BASES=local where public bases can't be pulled)
	@hack/image.sh build --tag $(IMAGE):$(VERSION) --bases $(BASES) >/dev/null

.PHONY: image-push
image-push: ## push IMAGE:<crate version> with the engine that built it (log in to the registry first)
	@hack/image.sh push $(IMAGE):$(VERSION)

.PHONY: image-local
image-local: ## the whole Dockerfile, build stage included, on local stand-in bases (buildah; 45 min the first time on a busy 2-core machine); prints size and files
	@ATO_IMAGE_ENGINE=buildah hack/image.sh build --tag localhost/$(IMAGE):$(VERSION) --bases local >/dev/null
	@hack/image.sh report localhost/$(IMAGE):$(VERSION)

.PHONY: demo
demo: ## the whole story on a local control plane with the Clerk simulator, then clean up
	@hack/demo.sh

.PHONY: fmt
fmt: ## format the Rust code
	$(CARGO) fmt --all

.PHONY: clean
clean: envtest-stop ## stop the control plane and remove build output (the tool cache stays)
	rm -rf .build target

# Kubernetes delivery: images, the kind cluster, the chart, skaffold and the end-to-end run.
# Tools for the cluster targets: docker, kind, kubectl, helm, skaffold (see docs/kubernetes.md).
.PHONY: images images-test bench-images chart-test cluster deploy skaffold-check dev port-forward e2e destroy

KIND_CLUSTER ?= crackseg
K8S_NAMESPACE ?= crackseg
# The tag `make images` builds; `make deploy` re-tags each image by its content (scripts/deploy.sh).
IMAGE_TAG ?= dev
# Every third-party chart is pinned to an exact version (tests/charts/test_delivery_files.py checks it).
KPS_VERSION ?= 88.5.3
TRAEFIK_VERSION ?= 37.0.0
METRICS_SERVER_VERSION ?= 3.12.2
# Helm 4 needs skaffold >= 2.17 (older skaffold drives the helm CLI with flags Helm 4 removed).
SKAFFOLD_MIN_VERSION ?= 2.17.0
# The Debian docker.io CLI builds with its built-in BuildKit; a newer CLI without buildx cannot.
DOCKER ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
# A local CPU torch wheel, served to the builds instead of download.pytorch.org (this machine has one).
TORCH_WHEEL ?= $(firstword $(wildcard /opt/wheels/torch-*+cpu-cp311-*.whl))
export DOCKER IMAGE_TAG

images: ## build the predictor, UI, trainer and MLflow images (BASE_IMAGE, TORCH_WHEEL to override)
	TORCH_WHEEL=$(TORCH_WHEEL) scripts/images-build.sh

images-test: install ## start dockerd if needed, build every image, check each container, run the pod-spec runner
	@scripts/dockerd.sh start
	@status=0; \
	  $(MAKE) --no-print-directory images && \
	  CRACKSEG_REQUIRE_IMAGES=1 $(BIN)/pytest tests/docker tests/k8s -m docker -p no:cacheprovider $(PYTEST_ARGS) \
	  || status=$$?; \
	  scripts/dockerd.sh stop; exit $$status

bench-images: install ## the four images: size, docker save (kind load with KIND_CLUSTER_LOAD=name), start → ready, memory → benchmarks/results/
	@scripts/dockerd.sh start
	@status=0; \
	  $(MAKE) --no-print-directory images && \
	  $(PY) benchmarks/images.py --tag $(IMAGE_TAG) $(if $(KIND_CLUSTER_LOAD),--kind-cluster $(KIND_CLUSTER_LOAD)) \
	  || status=$$?; \
	  scripts/dockerd.sh stop; exit $$status

chart-test: install ## render, validate and policy-check the chart; promtool and dashboards checks
	$(BIN)/pytest tests/charts tests/monitoring -m "not integration" $(PYTEST_ARGS)

cluster: ## create the kind cluster with Traefik and kube-prometheus-stack (Grafana at http://grafana.localtest.me)
	@kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --config k8s/kind-config.yaml
	kubectl config use-context kind-$(KIND_CLUSTER)
	kubectl apply -f k8s/namespace.yaml
	kubectl create namespace monitoring --dry-run=client -o yaml | kubectl apply -f -
	kubectl create namespace traefik --dry-run=client -o yaml | kubectl apply -f -
	helm repo add traefik https://traefik.github.io/charts >/dev/null
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
	helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server >/dev/null
	helm repo update >/dev/null
	helm upgrade --install traefik traefik/traefik --version $(TRAEFIK_VERSION) --namespace traefik \
	  -f k8s/traefik-values.yaml --wait
	# The predictor's HorizontalPodAutoscaler reads CPU from metrics-server; kind's kubelets serve self-signed certs.
	helm upgrade --install metrics-server metrics-server/metrics-server --version $(METRICS_SERVER_VERSION) \
	  --namespace kube-system -f k8s/metrics-server-values.yaml --wait
	@kubectl -n monitoring get secret grafana-admin >/dev/null 2>&1 || kubectl -n monitoring create secret generic grafana-admin \
	  --from-literal=admin-user=admin --from-literal=admin-password="$$(head -c 18 /dev/urandom | base64)"
	helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack --namespace monitoring \
	  --version $(KPS_VERSION) -f monitoring/kube-prometheus-stack-values.yaml --wait --timeout 10m

deploy: ## build the images, load them into kind under content tags and install the chart
	$(MAKE) --no-print-directory images
	KIND_CLUSTER=$(KIND_CLUSTER) K8S_NAMESPACE=$(K8S_NAMESPACE) scripts/deploy.sh $(HELM_ARGS)

skaffold-check:
	@v="$$(skaffold version | sed 's/^v//')"; \
	  [ "$$(printf '%s\n%s\n' "$(SKAFFOLD_MIN_VERSION)" "$$v" | sort -V | head -1)" = "$(SKAFFOLD_MIN_VERSION)" ] \
	  || { echo "skaffold $$v is too old for Helm 4: install skaffold >= $(SKAFFOLD_MIN_VERSION)" >&2; exit 2; }

dev: skaffold-check ## skaffold dev: rebuild and redeploy on change, with port-forwards (UI 8500, API 8000, MLflow 5000, Grafana 3000)
	skaffold dev --kube-context kind-$(KIND_CLUSTER) --port-forward=user $(SKAFFOLD_ARGS)

port-forward: ## forward the UI (8500), the predictor (8000), MLflow (5000) and Grafana (3000) to 127.0.0.1
	@trap 'kill 0' INT TERM EXIT; \
	kubectl -n $(K8S_NAMESPACE) port-forward svc/crackseg-ui 8500:8500 & \
	kubectl -n $(K8S_NAMESPACE) port-forward svc/crackseg-predictor 8000:8000 & \
	kubectl -n $(K8S_NAMESPACE) port-forward svc/crackseg-mlflow 5000:5000 & \
	kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80 & \
	wait

e2e: ## on its own kind cluster (crackseg-e2e): build, load, deploy, predict, feedback, retrain, new version served
	scripts/e2e.sh

destroy: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

# The predictor: `make serve` runs it locally, `make bench-serve` measures it end to end.
SERVE_MODEL ?= models/default
SERVE_PORT ?= 8000

.PHONY: serve bench-serve test-predictor test-lean bench-lean

serve: install ## run the predictor (SERVE_MODEL=dir or models:/crackseg@champion, SERVE_PORT=8000)
	$(BIN)/crackseg serve --model $(SERVE_MODEL) --port $(SERVE_PORT)

bench-serve: install ## e2e p50/p95 at 3 sizes, forward, overhead, throughput c=1/4/16, seed ratio → benchmarks/results/
	$(PY) benchmarks/serve.py --model $(SERVE_MODEL)

test-predictor: install ## the predictor's tests (units and the real-server integration tests)
	$(BIN)/pytest tests/services/predictor tests/ml/test_inference.py -q

LEAN_VENV ?= build/lean-venv

bench-lean: ## crackseg[serve] in a fresh venv (no torch): install time, size, start → ready, RSS → benchmarks/results/
	$(PY) benchmarks/lean.py --venv $(LEAN_VENV) $(if $(LEAN_IMAGE),--image $(LEAN_IMAGE))

test-lean: ## the predictor's server tests against crackseg[serve] alone (builds $(LEAN_VENV) when missing)
	[ -x $(LEAN_VENV)/bin/crackseg ] || $(PY) benchmarks/lean.py --venv $(LEAN_VENV)
	CRACKSEG_LEAN_VENV=$(LEAN_VENV) CRACKSEG_PREDICTOR_BIN=$(abspath $(LEAN_VENV))/bin/crackseg \
	  $(BIN)/pytest tests/services/predictor/test_lean.py tests/services/predictor/test_server.py -q

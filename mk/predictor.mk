# The predictor: `make serve` runs it locally, `make bench-serve` measures it end to end.
SERVE_MODEL ?= models/starter
SERVE_PORT ?= 8000

.PHONY: serve bench-serve test-predictor

serve: install ## run the predictor (SERVE_MODEL=dir or models:/crackseg@champion, SERVE_PORT=8000)
	$(BIN)/crackseg serve --model $(SERVE_MODEL) --port $(SERVE_PORT)

bench-serve: install ## e2e p50/p95 at 3 sizes, forward, overhead, throughput c=1/4/16, seed ratio → benchmarks/results/
	$(PY) benchmarks/serve.py --model $(SERVE_MODEL)

test-predictor: install ## the predictor's tests (units and the real-server integration tests)
	$(BIN)/pytest tests/services/predictor tests/ml/test_inference.py -q

# The predictor: `make serve` runs it locally, `make bench-serve` measures it end to end.
SERVE_MODEL ?= models/starter
SERVE_PORT ?= 8000

.PHONY: serve bench-serve test-predictor

serve: install ## run the predictor (SERVE_MODEL=dir or models:/crackseg@champion, SERVE_PORT=8000)
	$(BIN)/crackseg serve --model $(SERVE_MODEL) --port $(SERVE_PORT)

bench-serve: install ## end-to-end latency/throughput at concurrency 1/4/8 vs the bare forward → benchmarks/results/
	$(PY) benchmarks/serve.py --model $(SERVE_MODEL)

test-predictor: install ## the predictor's tests (units and the real-server integration tests)
	$(BIN)/pytest tests/services/predictor tests/ml/test_inference.py -q

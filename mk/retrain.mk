# The feedback → retraining loop (services/retrain, docs/retraining.md).
.PHONY: loop-demo test-retrain

loop-demo: install ## run the local loop with real processes; prints the served version before and after
	OMP_NUM_THREADS=1 $(PY) -m services.retrain.demo

test-retrain: install ## the retraining suite (Kubernetes fakes, trigger, crash injection, the whole local loop)
	$(BIN)/pytest tests/services/retrain $(PYTEST_ARGS)

# The feedback → retraining loop (services/retrain, docs/retraining.md).
.PHONY: loop-demo loop-bench test-retrain

loop-demo: install ## run the local loop with real processes; prints the served version before and after
	OMP_NUM_THREADS=1 $(PY) -m services.retrain.demo

# The held-out-domain proxy (services/retrain/proxy.py): a champion trained without CrackForest, CFD train-split
# photos as feedback, CFD val as eval, DeepCrack train/val as base; three retrain seeds, mean ± std.
LOOP_CHAMPION ?= models/proxy-no-crackforest
CRACKSEG_DATASETS ?= data
loop-bench: install ## one retrain on a held-out domain's feedback, before/after, 3 seeds (LOOP_CHAMPION=model dir)
	OMP_WAIT_POLICY=PASSIVE CRACKSEG_DATASETS=$(CRACKSEG_DATASETS) $(PY) -m services.retrain.proxy --champion $(LOOP_CHAMPION)

test-retrain: install ## the retraining suite (Kubernetes fakes, trigger, crash injection, the whole local loop)
	$(BIN)/pytest tests/services/retrain $(PYTEST_ARGS)

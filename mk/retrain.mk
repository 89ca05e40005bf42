# The feedback → retraining loop (services/retrain, docs/retraining.md).
.PHONY: loop-demo loop-bench test-retrain

loop-demo: install ## run the local loop with real processes; prints the served version before and after
	OMP_NUM_THREADS=1 $(PY) -m services.retrain.demo

# The held-out-domain proxy (services/retrain/proxy.py), three retrain seeds, mean ± std. Default: a champion trained
# without DeepCrack, 40 DeepCrack train-split photos as feedback, DeepCrack val as eval, CrackForest train/val as
# base. LOOP_PROXY=no-crackforest LOOP_CHAMPION=models/proxy-no-crackforest runs the reverse (CrackForest held out).
LOOP_PROXY ?= no-deepcrack
LOOP_CHAMPION ?= models/proxy-$(LOOP_PROXY)
CRACKSEG_DATASETS ?= data
loop-bench: install ## one retrain on a held-out domain's feedback, before/after, 3 seeds (LOOP_PROXY, LOOP_CHAMPION)
	OMP_WAIT_POLICY=PASSIVE CRACKSEG_DATASETS=$(CRACKSEG_DATASETS) $(PY) -m services.retrain.proxy \
		--proxy $(LOOP_PROXY) --champion $(LOOP_CHAMPION)

test-retrain: install ## the retraining suite (Kubernetes fakes, trigger, crash injection, the whole local loop)
	$(BIN)/pytest tests/services/retrain $(PYTEST_ARGS)

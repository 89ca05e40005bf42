# ML targets: benchmark, evaluate, train, data, starter model, DVC pipeline (see ml/ and dvc.yaml).
BENCH_ARGS ?=
MODEL ?= models/starter
EVAL_DATA ?= $(CRACKSEG_DATASETS)/crackforest
EVAL_SPLIT ?= test
TRAIN_DATA ?= $(CRACKSEG_DATASETS)/crackforest
TRAIN_OUT ?= state/train
TRAIN_ARGS ?=
STARTER_STEPS ?= 500
STARTER_ARGS ?=
SYNTH_N ?= 50

.PHONY: dvc-repro

bench: install ## CPU latency/GFLOPs per width and size + training images/s → benchmarks/results/ (BENCH_ARGS=--quick)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/crackseg bench $(BENCH_ARGS)

eval: install ## evaluate MODEL (default models/starter) on EVAL_DATA's EVAL_SPLIT (CrackForest test) → state/eval.json
	$(BIN)/crackseg eval --model $(MODEL) --data $(EVAL_DATA) --split $(EVAL_SPLIT) --out state/eval.json

train: install ## train with params.yaml on TRAIN_DATA (CrackForest train) into TRAIN_OUT, tracked in MLflow
	$(BIN)/crackseg train --config params.yaml --data $(TRAIN_DATA) --out $(TRAIN_OUT) $(TRAIN_ARGS)

data: install ## generate a synthetic dataset in data/synthetic and say how to fetch the real ones
	$(PY) -c "from ml.data import synthetic; synthetic.generate($(SYNTH_N), 'data/synthetic', seed=0)"
	@echo "synthetic: $(SYNTH_N) pairs in data/synthetic (images/ + masks/)"
	@echo "real data (non-commercial licences): $(BIN)/crackseg data fetch crackforest --dest data/"
	@echo "                                     $(BIN)/crackseg data fetch deepcrack --dest data/"

starter-model: install ## train models/starter on synthetic cracks only (the committed recipe: ~70 s on an H100, about an hour on 2 CPU cores), zero-shot F1 on CFD test
	$(BIN)/crackseg starter-model --out models/starter --steps $(STARTER_STEPS) \
		$(if $(wildcard $(EVAL_DATA)/split.json),--eval-data $(EVAL_DATA)) $(STARTER_ARGS)

dvc-repro: install ## run the DVC pipeline prepare → train → evaluate (metrics/eval.json)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

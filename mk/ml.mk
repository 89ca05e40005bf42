# ML targets: benchmark, evaluate, train, data, starter model, DVC pipeline (see ml/ and dvc.yaml).
BENCH_ARGS ?=
MODEL ?= models/default
EVAL_DATA ?=
EVAL_SPLIT ?= all
SEEDS ?= 0 1 2
TRAIN_JOBS ?= 3
TRAIN_DEFAULT_OUT ?= state/train-default
TRAIN_DATA ?= $(CRACKSEG_DATASETS)/crackforest
TRAIN_OUT ?= state/train
TRAIN_ARGS ?=
STARTER_STEPS ?= 500
STARTER_ARGS ?=
SYNTH_N ?= 50
VARIANTS_ARGS ?=

.PHONY: dvc-repro variants

bench: install ## CPU latency/GFLOPs per width and size + training images/s → benchmarks/results/ (BENCH_ARGS=--quick)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/crackseg bench $(BENCH_ARGS)

eval: install ## evaluate MODEL (models/default) on the fixed validation set, or on EVAL_DATA → state/eval.json + state/pr_curve.png
	$(BIN)/crackseg eval --model $(MODEL) $(if $(EVAL_DATA),--data $(EVAL_DATA) --split $(EVAL_SPLIT),--val) \
		--out state/eval.json --plot state/pr_curve.png

train-default: install ## the default model's recipe for SEEDS (0 1 2) side by side, resumable → TRAIN_DEFAULT_OUT/seedN; ships the best seed to models/default + card
	$(BIN)/crackseg train-default $(foreach s,$(SEEDS),--seed $(s)) --out $(TRAIN_DEFAULT_OUT) --jobs $(TRAIN_JOBS) \
		--ship models/default

variants: install ## width/depth/loss screening (one seed, equal budget; resumable) → models/default/variants.json + MODEL_CARD.md
	$(BIN)/crackseg variants --out state/variants $(VARIANTS_ARGS)
	$(BIN)/crackseg model-card --model models/default --seeds models/default/seeds.json

train: install ## train with params.yaml on TRAIN_DATA (CrackForest train) into TRAIN_OUT, tracked in MLflow
	$(BIN)/crackseg train --config params.yaml --data $(TRAIN_DATA) --out $(TRAIN_OUT) $(TRAIN_ARGS)

data: install ## generate a synthetic dataset in data/synthetic and say how to fetch the real ones
	$(PY) -c "from ml.data import synthetic; synthetic.generate($(SYNTH_N), 'data/synthetic', seed=0)"
	@echo "synthetic: $(SYNTH_N) pairs in data/synthetic (images/ + masks/)"
	@echo "real data (non-commercial licences): $(BIN)/crackseg data fetch crackforest --dest data/"
	@echo "                                     $(BIN)/crackseg data fetch deepcrack --dest data/"

starter-model: install ## train models/starter on synthetic cracks only (the committed recipe: ~70 s on an H100, about an hour on 2 CPU cores)
	$(BIN)/crackseg starter-model --out models/starter --steps $(STARTER_STEPS) $(STARTER_ARGS)

dvc-repro: install ## run the DVC pipeline prepare → train → evaluate (metrics/eval.json)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

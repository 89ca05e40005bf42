# Data layer (ml/data): integrity checks, synthetic sets and downloads. `make data` lives in mk/ml.mk.
DATA_ROOT ?= $(CRACKSEG_DATASETS)/crackforest
DATA_SPLIT ?=
SYNTH_N ?= 50
SYNTH_OUT ?= data/synthetic
SYNTH_WORKERS ?= 2

.PHONY: data-check data-synth data-fetch data-test

data-check: install ## integrity check + crack fraction of DATA_ROOT (DATA_SPLIT=train|test optional)
	$(BIN)/crackseg data check $(DATA_ROOT) $(if $(DATA_SPLIT),--split $(DATA_SPLIT))

data-synth: install ## generate SYNTH_N synthetic crack images into SYNTH_OUT (deterministic, seed 0)
	$(BIN)/crackseg data synth --n $(SYNTH_N) --out $(SYNTH_OUT) --seed 0 --workers $(SYNTH_WORKERS)

data-fetch: install ## download and convert CrackForest and DeepCrack into data/ (needs internet; non-commercial licences)
	$(BIN)/crackseg data fetch crackforest --dest data
	$(BIN)/crackseg data fetch deepcrack --dest data

data-test: install ## the data layer's tests (tests/ml/data)
	$(BIN)/pytest tests/ml/data $(PYTEST_ARGS)

# Batch inference over folders of photos (services/batch): `make predict IN=photos/ OUT=out/`.
IN ?=
OUT ?=
PREDICT_ARGS ?=

.PHONY: predict

predict: install ## segment and measure photos: IN=files/folders/globs OUT=dir [PREDICT_ARGS='--pixel-size 0.5 --server URL']
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make predict IN='photos/' OUT=out/ [PREDICT_ARGS='--pixel-size 0.5']"; exit 2; }
	$(BIN)/crackseg predict $(IN) --out $(OUT) $(PREDICT_ARGS)

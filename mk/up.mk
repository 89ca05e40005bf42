.PHONY: up down

up: install ## start the whole system locally (MLflow, predictor, UI, trigger, Prometheus); Ctrl-C stops it
	@test -f models/default/model.safetensors || { echo "models/default is missing: run 'make train-default' (or git checkout models/default)"; exit 1; }
	$(BIN)/crackseg up

down: ## stop a running `make up`
	@$(BIN)/crackseg down

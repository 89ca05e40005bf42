.PHONY: up down

up: install ## start the whole system locally (MLflow, predictor, UI, trigger, Prometheus); Ctrl-C stops it
	@test -f models/starter/model.safetensors || { echo "models/starter is missing: run 'make starter-model'"; exit 1; }
	$(BIN)/crackseg up

down: ## stop a running `make up`
	@$(BIN)/crackseg down

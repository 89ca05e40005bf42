# Streamlit UI (services/ui): `make ui` serves it on UI_PORT against PREDICTOR_URL and MLFLOW_TRACKING_URI.
UI_PORT ?= 8500
UI_ADDRESS ?= 127.0.0.1

.PHONY: ui ui-test ui-samples

ui: install ## start the Streamlit UI on UI_PORT (8500), talking to PREDICTOR_URL and MLFLOW_TRACKING_URI
	$(BIN)/crackseg ui --port $(UI_PORT) --address $(UI_ADDRESS)

ui-test: install ## UI suites: AppTest pages, client, overlay, registry; the real-browser test needs Chromium
	$(BIN)/pytest tests/services/ui $(PYTEST_ARGS)

ui-samples: install ## redraw the bundled sample photos in services/ui/samples (deterministic)
	$(PY) -m services.ui.make_samples

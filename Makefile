# Osprey: every target installs what is missing first (scripts/deps.sh is
# idempotent), then builds with CMake presets (Ninja + ccache).
PRESET ?= dev
BUILD := build/$(PRESET)
OSPREY := $(BUILD)/apps/osprey/osprey
PY := .venv/bin/python
PORT ?= 8080

.PHONY: deps build build-release run test unit integration bench format clean

deps:
	@scripts/deps.sh

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build $(BUILD)

build-release: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release

# Serves the example model (an iris XGBoost classifier trained on the spot) on :$(PORT).
run: build
	@$(PY) examples/train_example.py build/example/iris
	$(OSPREY) serve --model-dir build/example/iris --model-name iris --http-port $(PORT)

unit: build
	@cd $(BUILD) && ctest --output-on-failure

integration: build
	@OSPREY_BIN=$(OSPREY) tests/run_integration.sh

test: unit integration

bench: build-release
	@OSPREY_BIN=build/release/apps/osprey/osprey bench/run.sh

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build

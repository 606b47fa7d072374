# Osprey: every target installs what is missing first (scripts/deps.sh is
# idempotent), then builds with CMake presets (Ninja + ccache).
PRESET ?= dev
BUILD := build/$(PRESET)
OSPREY := $(BUILD)/apps/osprey/osprey
PY := .venv/bin/python
PORT ?= 8080

.PHONY: deps kube-deps jaeger-deps build build-release run test unit integration fuzz fuzz-smoke bench format clean

deps:
	@scripts/deps.sh

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build $(BUILD)

build-release: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release

# Brings up the local platform (state in build/osprey-home) with the example
# InferenceService (an iris XGBoost classifier trained on the spot) behind the
# gateway on :$(PORT).
run: build
	@$(PY) examples/train_example.py build/examples
	@echo "osprey up: gateway on :$(PORT); once the model is Ready, call it with:"
	@echo "  curl -H 'Host: xgboost-iris-default.example.com' http://127.0.0.1:$(PORT)/v1/models/xgboost-iris:predict -d '{\"instances\": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}'"
	@echo "  OSPREY_HOME=build/osprey-home $(OSPREY) get isvc"
	PATH="$(CURDIR)/.venv/bin:$$PATH" $(OSPREY) up --data-dir build/osprey-home --http-port $(PORT) \
	  --apply examples/xgboost-iris.yaml

# One test or a few: make unit T=<ctest regex>, make integration K=<pytest -k expression>.
unit: build kube-deps
	@cd $(BUILD) && ctest --output-on-failure $(if $(T),-R '$(T)')

integration: build kube-deps jaeger-deps
	@OSPREY_REQUIRE_KUBE=1 OSPREY_REQUIRE_JAEGER=1 OSPREY_BIN=$(OSPREY) tests/run_integration.sh $(if $(K),-k '$(K)')

test: unit integration fuzz-smoke

# libFuzzer on every parser of untrusted input (fuzz/; clang, ASan, UBSan):
# FUZZ_SECONDS each (600); make test runs each for a short time-box.
fuzz: deps
	@OSPREY_FUZZ_SECONDS=$(or $(FUZZ_SECONDS),600) scripts/fuzz.sh

fuzz-smoke: deps
	@OSPREY_FUZZ_SECONDS=$(or $(FUZZ_SECONDS),15) scripts/fuzz.sh

# The Kubernetes control plane the operator's tests start (scripts/k8s-testenv.sh).
kube-deps: deps
	@OSPREY_DEPS_KUBE=1 scripts/deps.sh

# Jaeger, the trace collector of the tracing tests (scripts/jaeger.sh).
jaeger-deps: deps
	@OSPREY_DEPS_JAEGER=1 scripts/deps.sh

bench: build-release
	@OSPREY_DEPS_BENCH=1 scripts/deps.sh
	@OSPREY_BIN=build/release/apps/osprey/osprey bench/run.sh
	@case ",$${BENCH_ONLY:-operator}," in *,operator,*) OSPREY_BIN=build/release/apps/osprey/osprey $(PY) bench/operator_scale.py ;; esac

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build

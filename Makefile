# Everything a developer or CI needs: `make test` on a fresh machine installs
# the Python dependencies into .venv, fetches the Go modules of the test
# stand-in, and runs the whole suite.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GO ?= go
STANDIN := tests/standin
TRIAL_ARGS ?= tests

export GOTOOLCHAIN ?= local
export GOFLAGS ?= -buildvcs=false

.PHONY: install test run standin-deps bench protofields clean

$(BIN)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e . --config-settings editable_mode=compat
	# twistd finds its plugins through twisted.plugins; refresh the cache so
	# `twistd scaleagent` works at once.
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $@

install: $(BIN)/.installed

standin-deps:
	cd $(STANDIN) && $(GO) mod download

test: install standin-deps
	$(BIN)/python tools/run_trial.py $(TRIAL_ARGS)

# With a configuration (~/.scale-cluster-agent/config, or RUN_CONFIG=dir)
# this runs the daemon in the foreground; without one it runs the demo: the
# bundled Rancher stand-in, a daemon pointed at it, and a few clusters.
run: install
	@if [ -n "$(RUN_CONFIG)" ] || [ -e "$$HOME/.scale-cluster-agent/config" ]; then \
		$(BIN)/twistd -n scaleagent $(if $(RUN_CONFIG),-c $(RUN_CONFIG)) $(RUN_ARGS); \
	else \
		$(BIN)/python tools/demo.py $(DEMO_ARGS); \
	fi

bench: install standin-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

# Regenerates scaleagent/kube/_protofields.py from the .proto files of the
# k8s.io/api module that the stand-in's go.mod pins.
protofields: install standin-deps
	$(BIN)/python tools/gen_protofields.py --write

clean:
	rm -rf $(VENV) _trial_temp* build dist *.egg-info

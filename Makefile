# The two README commands: `make demo` and `make test`. Both create / refresh
# the project virtualenv (.venv) and install the real OpenMMLab stack first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmmoma-installed

.PHONY: setup demo test lint clean-venv

setup: $(STAMP)

$(STAMP): requirements/build.txt requirements/runtime.txt requirements/tests.txt setup.py tools/install_mmcv.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/build.txt
	PYTHON=$(PY) bash tools/install_mmcv.sh
	$(PY) -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import mmcv.ops, mmseg, mmpretrain, mmmoma; print('mmmoma stack OK')"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_demo.py

# two pytest-xdist workers (one torch thread each, tests/conftest.py); each
# test module runs on one worker, so module fixtures (the smoke demo) are
# built once
test: $(STAMP)
	$(PY) -m pytest tests -q -rs -n 2 --dist loadfile

lint: $(STAMP)
	$(PY) -m flake8 mmmoma tools tests configs
	$(PY) -m isort --check-only mmmoma tools tests

clean-venv:
	rm -rf $(VENV)

# Shared by the layers' and the function's Makefiles, which sam build runs (BuildMethod: makefile)
# with ARTIFACTS_DIR set.
#
# Wheels are chosen for the Lambda target, not the build machine: arm64 as template.yaml says,
# unless LAMBDA_ARCHITECTURE says otherwise (`make bench` builds for the machine it runs on).
LAMBDA_ARCHITECTURE ?= arm64
# Python 3.13 for the build, found as the top Makefile finds it: on PATH on a laptop; under pyenv, whose
# python3.13 shim fails unless PYENV_VERSION is set, in pyenv's versions folder (a bare `sam build`).
PYTHON313 := $(shell for c in python3.13 "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.13*/bin/python3.13 \
	/usr/local/bin/python3.13 /usr/bin/python3.13; do "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' \
	>/dev/null 2>&1 && { command -v "$$c"; break; }; done)
ifeq ($(PYTHON313),)
$(error the Lambda build needs Python 3.13: install it, or put a python3.13 on PATH)
endif
PLATFORM := $(if $(filter x86_64 amd64,$(LAMBDA_ARCHITECTURE)),manylinux2014_x86_64,manylinux2014_aarch64)
PIP_TARGET = $(PYTHON313) -m pip install --quiet --no-compile --only-binary=:all: \
	--platform $(PLATFORM) --implementation cp --python-version 3.13 --target

# Lambda unpacks code read-only, so Python cannot cache bytecode there: without .pyc files every
# cold start compiles every module it imports. unchecked-hash: the files never change once deployed,
# and zip timestamps (2 s resolution) would make timestamp-checked .pyc files look stale.
COMPILE = $(PYTHON313) -m compileall -q -j 0 -f --invalidation-mode unchecked-hash

# Shared by the layers' and the function's Makefiles, which sam build runs (BuildMethod: makefile)
# with ARTIFACTS_DIR set.
#
# Wheels are chosen for the Lambda target, not the build machine: arm64 as template.yaml says,
# unless LAMBDA_ARCHITECTURE says otherwise (`make bench` builds for the machine it runs on).
LAMBDA_ARCHITECTURE ?= arm64
PLATFORM := $(if $(filter x86_64 amd64,$(LAMBDA_ARCHITECTURE)),manylinux2014_x86_64,manylinux2014_aarch64)
PIP_TARGET = python3.13 -m pip install --quiet --no-compile --only-binary=:all: \
	--platform $(PLATFORM) --implementation cp --python-version 3.13 --target

# Lambda unpacks code read-only, so Python cannot cache bytecode there: without .pyc files every
# cold start compiles every module it imports. unchecked-hash: the files never change once deployed,
# and zip timestamps (2 s resolution) would make timestamp-checked .pyc files look stale.
COMPILE = python3.13 -m compileall -q -j 0 -f --invalidation-mode unchecked-hash

# swiftlinux.deploy: two commands for users (make demo, make test) and a few for day-to-day work.
# Every target installs what it needs on first use: Debian packages, a loopback-only Docker engine,
# the pinned Python venv, and the locally built test-host images.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
SUITES    := trixie bookworm bullseye
SCENARIOS := $(notdir $(patsubst %/,%,$(dir $(wildcard molecule/*/molecule.yml))))
COLLECTION_LINK := .build/collections/ansible_collections/swiftlinux/deploy
# make test splits pytest into three streams by file, balanced by their measured times. Tests that tag images under
# swiftlinux-test/ (test_images removes them all when it ends) stay in the images stream; the others use prefixes of
# their own (swiftlinux-test-container/, swiftlinux-test-images/, swiftlinux-ship-test/). Every test file not named
# here falls into the hosts stream by itself.
PYTEST_IMAGES := $(addprefix tests/integration/,test_images.py test_fixtures.py test_elf_info.py test_collection.py \
                   test_swift_build.py test_bench.py test_debugging.py)
PYTEST_FLEET  := $(addprefix tests/integration/,test_ship.py test_lambda_package.py test_kit.py test_host_info.py \
                   test_dependencies.py test_container_role.py test_hostile_images.py test_registry_delivery.py)
PYTEST_HOSTS  := tests/unit $(filter-out $(PYTEST_IMAGES) $(PYTEST_FLEET),$(wildcard tests/integration/test_*.py))
PYTEST_STREAM := $(VENV)/bin/python -m pytest -p no:cacheprovider
# ansible-core lines tested beside the venv's own 2.19, each in .build/cores/<line> from tests/cores/<line>.txt
# (ansible-core, molecule and testinfra pinned together).
CORES       := 2.16 2.17 2.18
CORE_OLDEST := 2.16
CORE_VENVS  := $(CORES:%=.build/cores/%/.installed)

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Scenarios live in molecule/ (the users' layout), not extensions/molecule/; say so explicitly.
export MOLECULE_GLOB := molecule/*/molecule.yml
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0

.PHONY: help demo demo-clean test quick bootstrap system docker toolchain venv link test-hosts \
        lint sanity sanity-middle pytest molecule cores kit changelog clean bench bench-sizes bench-deploy bench-lambda \
        bench-fleet

help:
	@echo "make demo    ship the example service to a local fleet (4 systemd hosts, 1 container host) with ship.yml"
	@echo "make demo-clean  remove everything make demo created"
	@echo "make test    every test: lint, ansible-test sanity, pytest, molecule (installs what it needs)"
	@echo "make quick   day-to-day: lint and pytest, reusing cached builds"
	@echo "make cores   every supported ansible-core in its own venv: sanity, and the kit's molecule scenario"
	@echo "make clean   remove the venv, build output, test-host images and test containers"
	@echo "make bench   measure sizes, start-up, build and push times, reproducibility: docs/benchmarks.md"

# ---- set-up -------------------------------------------------------------------------------
bootstrap: toolchain system docker venv link

toolchain:
	@scripts/find-swift.sh >/dev/null

system:
	@scripts/ensure-system.sh

docker: system
	@scripts/ensure-docker.sh

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	@command -v python3 >/dev/null || { echo "swiftlinux.deploy: python3 is missing; install it with 'apt-get install -y python3 python3-venv'" >&2; exit 1; }
	@python3 -m venv $(VENV) || { echo "swiftlinux.deploy: could not create a venv; install 'python3-venv' and retry" >&2; exit 1; }
	@echo "==> installing the pinned Python requirements into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check "$$(grep '^uv==' requirements.txt)" \
	  || echo "==> could not install uv; pip installs the requirements (a few minutes)"
	@scripts/pip-install.sh $(VENV) requirements.txt
	@touch $@

link: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	@mkdir -p $(dir $@) && ln -sfn ../../../.. $@

$(CORE_VENVS): .build/cores/%/.installed: tests/cores/%.txt | $(VENV)/.installed
	@scripts/core-venv.sh $*

test-hosts: docker venv link
	@for suite in $(SUITES); do scripts/test-host-image.sh $$suite; done

# ---- the two user commands -----------------------------------------------------------------
demo: bootstrap test-hosts
	ansible-playbook -i playbooks/demo/inventory.yml playbooks/demo.yml

demo-clean: bootstrap
	ansible-playbook playbooks/demo-clean.yml

test: bootstrap test-hosts $(CORE_VENVS)
	@scripts/timed.sh lint     $(MAKE) --no-print-directory lint
	@# Sanity on the newest and the oldest supported ansible-core first, side by side (each core has its own copy
	@# of the collection); the cores between run beside the tests below, where streams spend time waiting.
	@scripts/side-by-side.sh "sanity=$(MAKE) --no-print-directory sanity" "sanity-$(CORE_OLDEST)=$(call core_sanity,$(CORE_OLDEST))"
	@scripts/timed.sh builds   $(PY) tests/prebuild.py
	@# Three pytest streams, molecule, the kit and the middle cores' sanity share nothing but the builds above
	@# (read-only now) and the engine (distinct names and ports), so they run side by side; each log is printed
	@# whole when all are done.
	@scripts/side-by-side.sh "pytest-images=$(PYTEST_STREAM) --basetemp=/tmp/swiftlinux-pytest-images $(PYTEST_IMAGES)" \
	                         "pytest-hosts=$(PYTEST_STREAM) --basetemp=/tmp/swiftlinux-pytest-hosts $(PYTEST_HOSTS)" \
	                         "pytest-fleet=$(PYTEST_STREAM) --basetemp=/tmp/swiftlinux-pytest-fleet $(PYTEST_FLEET)" \
	                         "molecule=$(MAKE) --no-print-directory molecule" \
	                         "kit=$(MAKE) --no-print-directory kit" \
	                         "sanity-middle=$(MAKE) --no-print-directory sanity-middle"

quick: bootstrap
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q

# ---- test stages ---------------------------------------------------------------------------
lint: venv link
	yamllint --strict .
	ansible-lint

sanity: venv
	scripts/sanity.sh

pytest: bootstrap
	$(PY) -m pytest

# ansible-test sanity with the ansible-core of .build/cores/<line>.
core_sanity = PATH=$(CURDIR)/.build/cores/$(1)/bin:$$PATH scripts/sanity.sh

# The supported cores between the oldest and the venv's, one after the other.
sanity-middle: $(CORE_VENVS) link
	@$(foreach c,$(filter-out $(CORE_OLDEST),$(CORES)),$(call core_sanity,$(c)) &&) true

# Every supported core, each in its own venv: sanity on the older cores side by side, then the kit's molecule
# scenario on each older core and on the venv's 2.19 (one after the other: all use the container
# swiftlinux-kit-bookworm). make test runs the kit on the oldest and the newest only.
cores: bootstrap test-hosts $(CORE_VENVS)
	@scripts/side-by-side.sh $(foreach c,$(CORES),"sanity-$(c)=$(call core_sanity,$(c))")
	@$(foreach c,$(CORES),scripts/timed.sh kit-$(c) scripts/kit-molecule.sh .build/cores/$(c) &&) true
	@scripts/timed.sh kit-venv scripts/kit-molecule.sh $(VENV)

# The kit's example role (examples/roles/my_service) as a role author runs it: the collection built and installed, then
# `molecule test`, on the oldest supported ansible-core and on the venv's.
kit: bootstrap test-hosts .build/cores/$(CORE_OLDEST)/.installed
	@scripts/timed.sh kit-$(CORE_OLDEST) scripts/kit-molecule.sh .build/cores/$(CORE_OLDEST)
	@scripts/timed.sh kit-venv scripts/kit-molecule.sh $(VENV)

changelog: venv
	@scripts/changelog.sh

molecule: bootstrap test-hosts
	@for scenario in $(SCENARIOS); do \
	  echo "==> molecule test -s $$scenario"; \
	  molecule test -s $$scenario || exit 1; \
	done

# Sizes, start-up, toolkit overhead, reproducibility, delivery and fleet speed in one run: docs/benchmarks.md and
# docs/fleet-benchmark.md, their JSON and charts. BENCH_ARGS="--quick --out DIR" runs everything once (the fleet on
# one host), writing to DIR (tests/integration/test_bench.py). make bench-fleet measures the fleet alone.
bench: bootstrap test-hosts
	$(PY) bench/run.py $(BENCH_ARGS)

bench-deploy: bootstrap
	$(PY) bench/deploy.py

bench-sizes: bootstrap
	$(PY) bench/sizes.py

clean:
	-@scripts/clean.sh
	rm -rf $(VENV) .build tests/fixtures/*/.build tests/fixtures/*/.swiftpm

bench-lambda: bootstrap
	$(PY) bench/lambda.py

bench-fleet: bootstrap test-hosts
	$(PY) bench/fleet.py $(BENCH_ARGS)

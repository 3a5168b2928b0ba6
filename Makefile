# ec2-tools — see README.md. `make demo` and `make test` do all set-up on a fresh machine.
CARGO ?= cargo
TOOLS := ec2-create ec2-exec-remote ec2-exec-local ec2-killall

.PHONY: all build release test demo install bench lint fmt setup clean

all: build

# Installs what is missing: openssh-server (apt-get) and moto[server] (pinned, in .venv).
setup:
	scripts/localcloud install

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) build --workspace
	$(CARGO) test --workspace -- --test-threads 4

demo: setup build
	scripts/demo tour
	scripts/demo tripcom
	scripts/demo master-slaves

install:
	for t in $(TOOLS); do $(CARGO) install --locked --path tools/$$t || exit 1; done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf .venv

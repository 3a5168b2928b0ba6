# ec2-tools — see README.md. `make demo` and `make test` do all set-up on a fresh machine.
CARGO ?= cargo
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
TOOLS := $(notdir $(wildcard tools/*))

.PHONY: all build release test demo install bench bench-report bench-ssm lint doc fmt setup prepare clean fuzz soak

all: build

# Installs what is missing: openssh-server (apt-get) and moto[server] (pinned, in .venv).
setup:
	scripts/localcloud install

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

# The installs (apt-get, pip) run while cargo builds: a fresh clone waits for the longer of the
# two, not their sum. `make test` adds Debian's chromium (the report page's browser test).
prepare:
	scripts/localcloud install $(INSTALL_ARGS) & inst=$$!; $(CARGO) build --workspace --bins --examples && wait $$inst

test:
	$(CARGO) fmt --all -- --check
	$(MAKE) prepare INSTALL_ARGS=--browser
	mkdir -p target
	$(CARGO) test --workspace -- --test-threads 4 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "%d passed, %d failed\n", p, f}' target/test.log

demo: prepare
	scripts/demo tour
	scripts/demo tripcom
	scripts/demo master-slaves
	scripts/demo http-load

# Side-by-side benchmark against pdsh and parallel-ssh (installed via apt-get when missing);
# results in target/bench/report.md, copied into BENCHMARKS.md by hand with commentary.
bench: setup release
	@command -v pdsh >/dev/null && command -v parallel-ssh >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pdsh pssh)
	.venv/bin/python scripts/bench.py $(BENCH_ARGS)
	$(MAKE) bench-report
	$(MAKE) bench-ssm

# `true` on 1,000 emulated instances over SSH (cold, warm) and over SSM, with the API calls each
# makes, and the 10,000-instance model (target/bench/report-ssm.md).
bench-ssm: setup release
	.venv/bin/python scripts/bench_ssm.py $(BENCH_SSM_ARGS)

# ec2-report merging 100 hosts x 100,000 requests against pandas, the hdrhistogram PyPI package
# and cat (target/bench/report-merge.md).
bench-report: release
	scripts/localcloud install
	.venv/bin/pip install -q --disable-pip-version-check pandas==2.2.3 hdrhistogram==0.10.3
	.venv/bin/python scripts/bench_report.py $(BENCH_REPORT_ARGS)

# The chaos soak: the example test cases SOAK_RUNS times (default 20) on the realistic local
# cloud, random faults per run; fails if any run leaves anything of its case in the emulator.
# Figures in RELIABILITY.md.
soak: prepare
	.venv/bin/python scripts/soak.py $(SOAK_ARGS)

# The property tests (common/src/properties.rs) at 100,000 cases each instead of 256.
fuzz:
	PROPTEST_CASES=$${PROPTEST_CASES:-100000} $(CARGO) test -p ec2-tools properties -- --test-threads 2

# One release build of the workspace, then copies: binaries, man pages, completions.
PREFIX ?= /usr/local
install: release
	install -d $(PREFIX)/bin $(PREFIX)/share/man/man1
	for t in $(TOOLS); do install -m 755 target/release/$$t $(PREFIX)/bin/ || exit 1; done
	target/release/ec2-tools man $(PREFIX)/share/man/man1 >/dev/null
	target/release/ec2-tools completions bash --dir $(PREFIX)/share/bash-completion/completions >/dev/null
	target/release/ec2-tools completions zsh --dir $(PREFIX)/share/zsh/site-functions >/dev/null
	target/release/ec2-tools completions fish --dir $(PREFIX)/share/fish/vendor_completions.d >/dev/null

fmt:
	$(CARGO) fmt --all

lint: doc
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The library's API documentation (target/doc/ec2_tools); a missing doc or a broken link fails.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p ec2-tools --no-deps

clean:
	$(CARGO) clean
	rm -rf .venv

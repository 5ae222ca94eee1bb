# peephole — build, deps, run, test, bench.
#
#   make deps    install build and test dependencies from Debian, and the
#                web front end's npm packages from proxy/web/package-lock.json
#                into build/npm (idempotent)
#   make         build ./peephole (objects in build/)
#   make run     deps + build + start the proxy on 127.0.0.1:8080
#   make test    deps + build + unit and e2e suites, then again under ASan+UBSan
#                and the threaded part under TSan
#   make bench   wrk through the proxy vs direct to nginx
#   make bench-peers  the same against tinyproxy, mitmproxy, squid, sslsplit
#   make bench-web    the web UI in chromium over a 100,000-flow capture

CC ?= cc
BUILD ?= build
SAN ?= 0

WARN = -Wall -Wextra -Wpedantic -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wold-style-definition -Wvla -Wwrite-strings \
	-Wimplicit-fallthrough -Wundef -Wnull-dereference -Werror
BASE_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g \
	-fstack-protector-strong -fPIE \
	-DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED -pthread \
	-I. -I/usr/share/include/llhttp
ifeq ($(SAN),1)
OPT = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
SANLD = -fsanitize=address,undefined
else ifeq ($(SAN),tsan)
OPT = -O1 -fno-omit-frame-pointer -fsanitize=thread
SANLD = -fsanitize=thread
else
OPT = -O2 -D_FORTIFY_SOURCE=2
SANLD =
endif
CFLAGS += $(BASE_CFLAGS) $(WARN) $(OPT)
LDFLAGS += -pie -Wl,-z,relro,-z,now -pthread $(SANLD)
LIBS = -levent_core -levent_extra -levent_pthreads -levent_openssl -lssl -lcrypto \
	-lsqlite3 -ljansson -lz -lexpat -lpcre2-8 -lbrotlidec -lzstd -lnghttp2 \
	-lmaxminddb

LLHTTP_DIR = /usr/share/llhttp
LLHTTP_SRC = $(wildcard $(LLHTTP_DIR)/*.c)
LLHTTP_OBJ = $(patsubst $(LLHTTP_DIR)/%.c,$(BUILD)/llhttp/%.o,$(LLHTTP_SRC))

# Every module under proxy/, conf/, ca/, filters/; main.c alone is left out of
# the library the unit tests link against.
SRC = $(sort $(wildcard proxy/*.c proxy/*/*.c conf/*.c ca/*.c filters/*.c))
OBJ = $(patsubst %.c,$(BUILD)/%.o,$(SRC)) $(WEB_GEN_OBJ)
LIB_OBJ = $(filter-out $(BUILD)/proxy/main.o,$(OBJ)) $(LLHTTP_OBJ)
BIN = $(BUILD)/peephole

UNIT_SRC = $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

PYTEST = /usr/bin/python3 -m pytest

# The web UI's npm packages: pinned with integrity hashes in
# proxy/web/package-lock.json, installed by `make deps` into one fixed
# directory whatever BUILD is (the sanitizer builds embed the same files and
# the e2e tests drive chromium with the same playwright-core). npm writes
# node_modules/.package-lock.json last: it is the stamp of an install, done
# again when the lockfile is newer or differs from the copy installed (a
# build/npm that something else installed into).
NPM_DIR = build/npm
NPM_STAMP = $(NPM_DIR)/node_modules/.package-lock.json
WEB_LOCK = proxy/web/package.json proxy/web/package-lock.json
PLAYWRIGHT_CORE = $(CURDIR)/$(NPM_DIR)/node_modules/playwright-core

# Geolocation data (proxy/geo/): the @ip-location-db packages pinned in the
# same lockfile, made into one data directory whatever BUILD is (every build
# of the binary finds build/geo beside it). The country MMDB is copied as is;
# the ASN CSVs become the mmap-and-binary-search range file of
# proxy/geo/asn.h (under a second where libmaxmind-db-writer-perl takes
# minutes). source.txt, written last, names each file's package, version and
# data date (the version is 2.3.YYYYMMDDHH) and is the stamp: redone only
# when npm reinstalled or the converter changed.
GEO_DIR = build/geo
GEO_NPM = $(NPM_DIR)/node_modules/@ip-location-db
GEO_STAMP = $(GEO_DIR)/source.txt
GEO_TOOL = build/tools/geo_asn_build
GEO_TOOL_SRC = proxy/geo/tool/geo_asn_build.c proxy/geo/asn_build.c proxy/geo/asn.h

# The static files (proxy/web/ui/ and the vendor files) become one generated
# C file in the build tree, linked into the binary and libpeephole.a. The
# directories are prerequisites too, so that removing a file regenerates.
WEB_UI = $(shell find proxy/web/ui 2>/dev/null)
WEB_GEN = $(BUILD)/gen/web_assets_data.c
WEB_GEN_OBJ = $(BUILD)/gen/web_assets_data.o

.PHONY: all deps run test test-unit test-e2e test-san test-tsan bench \
	bench-peers bench-web clean format-check layer-check fuzz

all: peephole

# ./peephole is the normal build; the ASan build lives in build/asan/.
peephole: $(BIN)
	@if [ "$(BUILD)" = build ]; then cp -f $(BIN) peephole; fi

$(BIN): $(OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Third-party code from Debian's node-llhttp: compiled in, in llhttp's strict
# mode (stricter header and URL syntax: what a proxy must not let through),
# our warnings off.
$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -g $(OPT) -fPIE -DLLHTTP_STRICT_MODE=1 \
		-I/usr/share/include/llhttp -c -o $@ $<

$(NPM_STAMP): $(WEB_LOCK)
	@echo "$(NPM_DIR) is missing or older than proxy/web/package-lock.json:" \
		"run make deps" >&2; exit 1

$(GEO_TOOL): $(GEO_TOOL_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(WARN) -O2 -o $@ $(filter %.c,$^)

$(GEO_STAMP): $(NPM_STAMP) $(GEO_TOOL)
	@mkdir -p $(GEO_DIR)
	@set -e; ver() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
		$(GEO_NPM)/$$1/package.json; }; \
	day() { echo "$$1" | sed -n \
		's/.*\.\([0-9]\{4\}\)\([0-9][0-9]\)\([0-9][0-9]\)[0-9]*$$/\1-\2-\3/p'; }; \
	cv=$$(ver geo-whois-asn-country-mmdb); av=$$(ver asn); \
	echo "geo data: country $$cv, asn $$av -> $(GEO_DIR)"; \
	cp $(GEO_NPM)/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb \
		$(GEO_DIR)/country.mmdb.tmp; \
	mv -f $(GEO_DIR)/country.mmdb.tmp $(GEO_DIR)/country.mmdb; \
	$(GEO_TOOL) $(GEO_DIR)/asn.bin "$$(day $$av)" \
		$(GEO_NPM)/asn/asn-ipv4.csv $(GEO_NPM)/asn/asn-ipv6.csv; \
	{ echo "country.mmdb @ip-location-db/geo-whois-asn-country-mmdb $$cv $$(day $$cv)"; \
	  echo "asn.bin @ip-location-db/asn $$av $$(day $$av)"; } \
		>$(GEO_DIR)/source.txt.tmp; \
	mv -f $(GEO_DIR)/source.txt.tmp $@

$(WEB_GEN): proxy/web/embed.sh $(WEB_UI) $(NPM_STAMP)
	@mkdir -p $(dir $@)
	sh proxy/web/embed.sh $@ proxy/web/ui $(NPM_DIR)/node_modules $(BUILD)/gen

$(WEB_GEN_OBJ): $(WEB_GEN) Makefile
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libpeephole.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libpeephole.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libpeephole.a \
		$(LDFLAGS) $(LIBS) -lcmocka -lbrotlienc

# Build and test dependencies; chromium + libnss3-tools drive the browser
# e2e test, nghttp2's clients (nghttp, h2load) and python3-h2 /
# python3-websockets drive the HTTP/2 and WebSocket tests, clang-format
# checks the style; libmaxminddb reads the country data (mmdb-bin's
# mmdblookup to check it by hand). nodejs runs npm and playwright-core
# (Debian 12's node 18:
# playwright-core stays at 1.61, the last release that runs on it).
DEB_PKGS = build-essential libevent-dev libssl-dev libsqlite3-dev zlib1g-dev \
	libjansson-dev libexpat1-dev libpcre2-dev libbrotli-dev libzstd-dev \
	brotli zstd node-llhttp nodejs libcmocka-dev python3-pytest curl \
	nginx-light sqlite3 wrk procps openssl chromium libnss3-tools \
	iproute2 iptables libmaxminddb-dev mmdb-bin dnsmasq-base libcap2-bin \
	libnghttp2-dev nghttp2-client nghttp2-server python3-h2 \
	python3-websockets \
	clang-format clang libclang-rt-14-dev
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends $$missing; \
	fi
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "installing: npm"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends npm; \
	fi
	@if [ ! -f $(NPM_STAMP) ] || \
	    ! cmp -s proxy/web/package-lock.json $(NPM_DIR)/package-lock.json || \
	    [ -n "$$(find $(WEB_LOCK) -newer $(NPM_STAMP))" ]; then \
		echo "npm ci in $(NPM_DIR)"; \
		mkdir -p $(NPM_DIR) && cp $(WEB_LOCK) $(NPM_DIR)/ && \
		(cd $(NPM_DIR) && npm ci --no-audit --no-fund --ignore-scripts \
			--loglevel=error) && touch $(NPM_STAMP); \
	fi
	@$(MAKE) -s --no-print-directory $(GEO_STAMP)

# deps first, then the build: never both at once under -j.
run: deps
	$(MAKE) all
	./peephole run

test-unit: $(UNIT_BIN) $(GEO_STAMP)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# The CA for tests lives in the build tree, never in the user's ~/.peephole.
# The browser tests load playwright-core from PLAYWRIGHT_CORE.
test-e2e: peephole $(GEO_STAMP)
	PLAYWRIGHT_CORE=$(PLAYWRIGHT_CORE) \
	PEEPHOLE_HOME=$(CURDIR)/$(BUILD)/test-home \
	PEEPHOLE_BIN=$(CURDIR)/$(BIN) $(PYTEST) -q tests/e2e

test-san:
	$(MAKE) BUILD=build/asan SAN=1 test-unit test-e2e

# ThreadSanitizer (clang): the unit tests, then the e2e tests that run many
# workers and concurrent clients (TSAN_E2E). halt_on_error makes the proxy
# exit on its first report, and the e2e fixtures fail a test on a non-zero
# exit or "ThreadSanitizer" in the proxy's stderr. tests/tsan.supp holds only
# narrowly scoped false positives in third-party libraries.
TSAN_E2E ?= tests/e2e
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
	suppressions=$(CURDIR)/tests/tsan.supp $(TSAN_OPTIONS)"
# clang 14's TSan cannot map its shadow under the 32 bits of mmap
# randomisation newer kernels default to; setarch -R turns randomisation off
# for the test processes only.
TSAN_RUN = setarch $$(uname -m) -R
test-tsan:
	$(MAKE) BUILD=build/tsan SAN=tsan CC=clang peephole
	$(TSAN_ENV) $(TSAN_RUN) $(MAKE) BUILD=build/tsan SAN=tsan CC=clang \
		test-unit
	$(TSAN_ENV) PLAYWRIGHT_CORE=$(PLAYWRIGHT_CORE) \
	PEEPHOLE_HOME=$(CURDIR)/build/tsan/test-home \
	PEEPHOLE_BIN=$(CURDIR)/build/tsan/peephole $(TSAN_RUN) $(PYTEST) -q \
		$(TSAN_E2E)

# Everything CI runs: style, unit and e2e suites on the normal build, a
# short bounded run of each fuzzer, then both suites under ASan+UBSan and
# under TSan.
test: deps
	$(MAKE) all
	$(MAKE) format-check layer-check
	$(MAKE) test-unit test-e2e
	$(MAKE) fuzz FUZZ_SECONDS=10
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1 $(MAKE) test-san
	$(MAKE) test-tsan

bench: deps
	$(MAKE) all
	/usr/bin/python3 tests/bench/bench.py --peephole $(CURDIR)/$(BIN)

# peephole against tinyproxy, mitmproxy, squid (ssl-bump) and sslsplit,
# installed from Debian when missing.
bench-peers: deps
	$(MAKE) all
	/usr/bin/python3 tests/bench/peers.py --peephole $(CURDIR)/$(BIN)

# `peephole web` over a generated capture of BENCH_FLOWS flows, in Debian's
# chromium through playwright-core: first paint, all rows loaded, scroll to
# the end, memory. Reported, never asserted.
# The same capture in mitmweb (Debian's mitmproxy) is the baseline, measured
# in the same run: BENCH_WEB_ARGS=--no-mitmweb leaves it out.
BENCH_FLOWS ?= 100000
BENCH_WEB_ARGS ?=
bench-web: deps
	$(MAKE) all
	PLAYWRIGHT_CORE=$(PLAYWRIGHT_CORE) node tests/bench/web_bench.mjs \
		--peephole $(CURDIR)/$(BIN) --flows $(BENCH_FLOWS) \
		--dir $(CURDIR)/build/bench-web $(BENCH_WEB_ARGS)

# libFuzzer harnesses for the pure parsers (clang from `apt-get install clang`).
# Seeds in tests/fuzz/corpus/ are only read; new inputs go to build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 \
	-fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all $(WARN) -I.
# Every harness links all of filters/, so all take the libraries it needs.
FUZZ_LIBS = -lz -lexpat -lpcre2-8 -lbrotlidec -lzstd
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard filters/*.c filters/*.h)
	@mkdir -p build/fuzz/corpus_$*
	clang $(FUZZ_CFLAGS) -o $@ $< $(wildcard filters/*.c) $(FUZZ_LIBS)

fuzz: build/fuzz/fuzz_sniff build/fuzz/fuzz_rules build/fuzz/fuzz_mmtls \
	build/fuzz/fuzz_newdns build/fuzz/fuzz_filter build/fuzz/fuzz_decode \
	build/fuzz/fuzz_wsframe
	build/fuzz/fuzz_sniff -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-artifact_prefix=build/fuzz/ build/fuzz/corpus_sniff \
		tests/fuzz/corpus/sniff
	build/fuzz/fuzz_rules -max_total_time=$(FUZZ_SECONDS) -max_len=512 \
		-artifact_prefix=build/fuzz/ build/fuzz/corpus_rules \
		tests/fuzz/corpus/rules
	build/fuzz/fuzz_mmtls -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-artifact_prefix=build/fuzz/ build/fuzz/corpus_mmtls \
		tests/fuzz/corpus/mmtls
	build/fuzz/fuzz_newdns -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-dict=tests/fuzz/newdns.dict -artifact_prefix=build/fuzz/ \
		build/fuzz/corpus_newdns tests/fuzz/corpus/newdns
	build/fuzz/fuzz_filter -max_total_time=$(FUZZ_SECONDS) -max_len=512 \
		-artifact_prefix=build/fuzz/ build/fuzz/corpus_filter \
		tests/fuzz/corpus/filter
	build/fuzz/fuzz_decode -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-rss_limit_mb=1024 -artifact_prefix=build/fuzz/ \
		build/fuzz/corpus_decode tests/fuzz/corpus/decode
	build/fuzz/fuzz_wsframe -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-artifact_prefix=build/fuzz/ build/fuzz/corpus_wsframe \
		tests/fuzz/corpus/wsframe

format-check:
	clang-format --dry-run -Werror $(SRC) $(wildcard proxy/geo/tool/*.c) $(wildcard proxy/*.h proxy/*/*.h conf/*.h ca/*.h filters/*.h) $(UNIT_SRC)

# Layering: filters/, ca/ and conf/ are pure and must not reach into proxy/;
# the store (its writer and its read side) sits below the commands and the
# network engine, so proxy/store/ includes nothing from proxy/cli/ or
# proxy/net/; every header is named by its path from the top of the tree
# (one -I.).
layer-check:
	@if grep -n '#include "proxy/' filters/*.[ch] ca/*.[ch] conf/*.[ch]; then \
		echo "layer-check: filters/, ca/, conf/ include proxy/" >&2; exit 1; fi
	@if grep -n '#include "proxy/\(cli\|net\)/' proxy/store/*.[ch]; then \
		echo "layer-check: proxy/store/ includes proxy/cli/ or proxy/net/" \
		>&2; exit 1; fi
	@if grep -n '#include "[^/"]*"' $(SRC) $(wildcard proxy/*.h \
		proxy/*/*.h conf/*.h ca/*.h filters/*.h) $(UNIT_SRC); then \
		echo "layer-check: include by full path from the top" >&2; exit 1; fi

clean:
	rm -rf build peephole

-include $(OBJ:.o=.d) $(UNIT_BIN:=.d)

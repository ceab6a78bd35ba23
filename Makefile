# remote_runner: build the Lua C module for each Lua version and run its tests.
#
#   make deps                 install the Debian packages the build and tests need (apt-get)
#   make build [LUA=5.4]      build/lua5.4/remote_runner.so + build/lua5.4/svc_run_lua.so (symlink)
#                             LUA = 5.4 (default) | 5.3 | 5.2 | 5.1 | jit (-> build/luajit/)
#   make test                 cargo tests, then the busted specs (test_lua/*_spec.lua) on Lua 5.4,
#                             then the C host test (tests/host: Lua states created and closed)
#   make test-lua [LUA=5.3]   the busted specs on one Lua version only
#   make test-all             cargo tests, then the busted specs on 5.4, 5.3, 5.2, 5.1 and LuaJIT
#   make lint                 cargo fmt --check, cargo clippy -D warnings, luacheck
#   make bench                Lua 5.4 codec benchmark (bench/codec_bench.lua)
#   make demo                 examples/demo.lua on Lua 5.4
#   make fuzz [FUZZ_SECONDS=900 FUZZ_TARGET=parse|wire]   cargo fuzz (not part of test)
#   make clean
#
# Each Lua version builds in its own cargo target dir (target/lua5.4, target/luajit, ...), so
# switching versions does not rebuild everything.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
.SUFFIXES:

# Absolute path of the repository (the directory of this Makefile), whatever the cwd.
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

LUA ?= 5.4
LUA_VERSIONS := 5.4 5.3 5.2 5.1 jit
DEFAULT_LUA := 5.4

# lua_name(5.4) = lua5.4, lua_name(jit) = luajit: interpreter, build dir and cargo target dir.
lua_name = $(if $(filter jit,$(1)),luajit,lua$(1))
# cargo feature: lua54 ... lua51, luajit
lua_feature = $(if $(filter jit,$(1)),luajit,lua$(subst .,,$(1)))

ifeq ($(filter $(LUA),$(LUA_VERSIONS)),)
$(error LUA=$(LUA) is not one of: $(LUA_VERSIONS))
endif

CARGO ?= cargo
# Rust tests run with the default feature (lua54); they share target/lua5.4 with `make build`.
CARGO_TEST_ENV := CARGO_TARGET_DIR=$(ROOT)/target/$(call lua_name,$(DEFAULT_LUA))

RR_FIXTURES ?= $(abspath $(ROOT)/../shared/fixtures/serpent)
export RR_FIXTURES

# ---------------------------------------------------------------------------------------------
# Debian packages
DEB_PACKAGES := \
	lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev \
	luajit libluajit-5.1-dev \
	lua-busted lua-check lua-cjson lua-messagepack
# cargo links with cc and downloads crates over TLS: a machine with a working rustup has both,
# but `liblua*-dev` only *recommends* gcc, so they are listed rather than assumed.
DEB_PACKAGES += gcc libc6-dev ca-certificates
# lua-busted already depends on these; listed so a partial install is repaired too. Debian builds
# their C parts for 5.1-5.4, which is what lets busted run under every interpreter.
DEB_PACKAGES += lua-term lua-system lua-filesystem lua-luassert lua-penlight lua-say lua-cliargs \
	lua-mediator lua-dkjson

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps
deps:
	@missing=""; \
	installed=" $$(dpkg-query -W -f='$${Package}:$${db:Status-Status} ' $(DEB_PACKAGES) 2>/dev/null || true) "; \
	for p in $(DEB_PACKAGES); do \
	  case "$$installed" in *" $$p:installed "*) ;; *) missing="$$missing $$p" ;; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get update -q; \
	  $(SUDO) apt-get install -y -q -o Dpkg::Use-Pty=0 $$missing; \
	fi

# ---------------------------------------------------------------------------------------------
# Build: one rule per Lua version, build-5.4 build-5.3 build-5.2 build-5.1 build-jit.
# cargo decides what is stale; the .so is copied (new inode, via rename, so a running process that
# has the old one mapped is not disturbed) only when it changed. svc_run_lua.so is a symlink to
# remote_runner.so: one file, so dlopen loads one copy and both names share its static state.
define BUILD_RULE
.PHONY: build-$(1)
build-$(1):
	cd $(ROOT) && CARGO_TARGET_DIR=$(ROOT)/target/$(call lua_name,$(1)) \
	  $(CARGO) build --release --no-default-features --features $(call lua_feature,$(1))
	@out=$(ROOT)/build/$(call lua_name,$(1)); lib=$(ROOT)/target/$(call lua_name,$(1))/release/libremote_runner.so; \
	mkdir -p $$$$out; \
	if ! cmp -s $$$$lib $$$$out/remote_runner.so; then \
	  cp $$$$lib $$$$out/.remote_runner.so.tmp && mv -f $$$$out/.remote_runner.so.tmp $$$$out/remote_runner.so; \
	fi; \
	ln -sfn remote_runner.so $$$$out/svc_run_lua.so; \
	echo "built build/$(call lua_name,$(1))/remote_runner.so (+ svc_run_lua.so -> remote_runner.so)"
endef
$(foreach v,$(LUA_VERSIONS),$(eval $(call BUILD_RULE,$(v))))

.PHONY: build build-all
build: build-$(LUA)
build-all: $(addprefix build-,$(LUA_VERSIONS))

# ---------------------------------------------------------------------------------------------
# Tests. scripts/run_busted.sh runs busted under each interpreter and prints the closing line
# "N passed, N failed" (summed over the versions it ran); it exits non-zero on any failure.
.PHONY: test test-all test-lua cargo-test
cargo-test:
	cd $(ROOT) && $(CARGO_TEST_ENV) $(CARGO) test --release

test: deps cargo-test build-$(DEFAULT_LUA)
	bash $(ROOT)/scripts/run_busted.sh $(DEFAULT_LUA)
	$(MAKE) --no-print-directory test-host

# C hosts like a game server's (Lua 5.4 linked statically, symbols exported with -Wl,-E):
# state_cycle creates, uses and closes Lua states over and over and fails if the heap grows
# with them; out_of_memory makes the Lua allocator fail at every point of each codec
# operation, and rpc_out_of_memory at every point of a whole RPC flow (tests/host/rpc_flow.lua,
# and the service side alone: tests/host/rpc_serve_flow.lua),
# and fail if that loses memory or breaks a promise. glibc's per-thread cache keeps freed blocks
# counted as in use, so it is turned off for the heap figures to be exact.
HOST_TESTS := state_cycle out_of_memory rpc_out_of_memory
HOST_RUN := GLIBC_TUNABLES=glibc.malloc.tcache_count=0
$(ROOT)/build/host/%: $(ROOT)/tests/host/%.c $(ROOT)/tests/host/capped_alloc.h | deps
	mkdir -p $(dir $@)
	$(CC) -O1 -Wall -Werror -I/usr/include/lua5.4 $< -o $@ -Wl,-E -l:liblua5.4.a -lm -ldl

.PHONY: test-host
test-host: build-5.4 $(addprefix $(ROOT)/build/host/,$(HOST_TESTS))
	cd $(ROOT) && $(HOST_RUN) build/host/state_cycle build/lua5.4
	cd $(ROOT) && $(HOST_RUN) build/host/out_of_memory build/lua5.4
	cd $(ROOT) && $(HOST_RUN) build/host/rpc_out_of_memory build/lua5.4 tests/host/rpc_flow.lua
	cd $(ROOT) && $(HOST_RUN) build/host/rpc_out_of_memory build/lua5.4 tests/host/rpc_serve_flow.lua

test-lua: deps build-$(LUA)
	bash $(ROOT)/scripts/run_busted.sh $(LUA)

test-all: deps cargo-test build-all
	bash $(ROOT)/scripts/run_busted.sh $(LUA_VERSIONS)
	$(MAKE) --no-print-directory test-host

# ---------------------------------------------------------------------------------------------
# Lint
LUACHECK_DIRS = $(wildcard $(addprefix $(ROOT)/,lua test_lua bench examples tests/host))

.PHONY: lint
lint: deps
	cd $(ROOT) && $(CARGO) fmt --all -- --check
	cd $(ROOT) && $(CARGO_TEST_ENV) $(CARGO) clippy --release --all-targets -- -D warnings
	@if [ -n "$(LUACHECK_DIRS)" ]; then \
	  echo "cd $(ROOT) && luacheck $(patsubst $(ROOT)/%,%,$(LUACHECK_DIRS))"; \
	  cd $(ROOT) && luacheck $(patsubst $(ROOT)/%,%,$(LUACHECK_DIRS)); \
	fi

# ---------------------------------------------------------------------------------------------
# Bench and demo (Lua 5.4). Debian ships MessagePack.lua for 5.1-5.3 only; the 5.3 file works
# on 5.4, so it is put at the end of 5.4's package.path (';;' = the default path).
BENCH_SCRIPT := bench/codec_bench.lua
DEMO_SCRIPT := examples/demo.lua
LUA54_ENV := LUA_PATH_5_4=';;/usr/share/lua/5.3/?.lua'

.PHONY: bench demo
bench: deps build-5.4
	@cd $(ROOT); mkdir -p build/bench; \
	$(CC) -O2 -shared -fPIC -I/usr/include/lua5.4 bench/reference/minbin.c -o build/bench/minbin.so; \
	$(CC) -O2 -shared -fPIC -DARRAY_SHORTCUT -I/usr/include/lua5.4 bench/reference/minbin.c -o build/bench/arraybin.so; \
	$(CC) -O2 -shared -fPIC -I/usr/include/lua5.4 bench/reference/callfloor.c -o build/bench/callfloor.so; \
	if [ -f $(BENCH_SCRIPT) ]; then \
	  echo "BENCH_REFERENCE_DIR=build/bench lua5.4 $(BENCH_SCRIPT) build/lua5.4"; \
	  $(LUA54_ENV) BENCH_REFERENCE_DIR=build/bench lua5.4 $(BENCH_SCRIPT) build/lua5.4; \
	  echo "BENCH_REFERENCE_DIR=build/bench lua5.4 bench/rpc_bench.lua build/lua5.4"; \
	  BENCH_REFERENCE_DIR=build/bench lua5.4 bench/rpc_bench.lua build/lua5.4; \
	else \
	  echo "bench: $(BENCH_SCRIPT) does not exist yet"; \
	fi

demo: $(if $(wildcard $(ROOT)/$(DEMO_SCRIPT)),deps build-5.4)
	@cd $(ROOT); if [ -f $(DEMO_SCRIPT) ]; then \
	  echo "lua5.4 $(DEMO_SCRIPT) build/lua5.4"; \
	  $(LUA54_ENV) lua5.4 $(DEMO_SCRIPT) build/lua5.4; \
	else \
	  echo "demo: no demo yet; it arrives with the RPC issue ($(DEMO_SCRIPT))"; \
	fi

# ---------------------------------------------------------------------------------------------
# Fuzzing (the fuzz/ crate is separate). cargo-fuzz is installed from crates.io when missing;
# it needs nightly rustc flags: +nightly when that toolchain exists, else RUSTC_BOOTSTRAP=1.
FUZZ_SECONDS ?= 900
FUZZ_TARGET ?= parse
FUZZ_TOOLCHAIN := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo +nightly)

.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd $(ROOT) && $(if $(FUZZ_TOOLCHAIN),,RUSTC_BOOTSTRAP=1) $(CARGO) $(FUZZ_TOOLCHAIN) fuzz run $(FUZZ_TARGET) \
	  -- -max_total_time=$(FUZZ_SECONDS)

# ---------------------------------------------------------------------------------------------
.PHONY: clean
clean:
	rm -rf $(ROOT)/build $(ROOT)/target

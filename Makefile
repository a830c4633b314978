# engramd - serves Engram conditional-memory tables from LMDB. See README.md.
#
#   make test            install missing Debian packages, build, run every test
#   make run             same setup, then serve a demo table in the foreground
#   make bench           benchmarks (long; not part of the tests)
#   make soak            one daemon under everything at once for SOAK_SECONDS
#                        (600), every row checked (not part of the tests)
#   make SANITIZE=address,undefined test    sanitizer build (in build-address-undefined/)
#   make install PREFIX=/usr DESTDIR=...   (also uninstall; mk/install.mk)
#   make deb             a Debian package (debhelper; debian/)
#
# Dependencies come through pkg-config. The top-level targets first run
# scripts/deps.sh (installs missing packages as root) and then re-enter make,
# so pkg-config is read after the packages exist.

PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
# Debian's python3: sees python3-numpy and python3-protobuf (a python3 earlier
# on PATH may not).
PYTHON    ?= /usr/bin/python3
CC        ?= cc
CFLAGS    ?= -O2 -g
SANITIZE  ?=
comma     := ,
# one build directory per sanitizer set: build-address-undefined, build-thread
BUILD     ?= $(if $(SANITIZE),build-$(subst $(comma),-,$(SANITIZE)),build)

WARN := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
        -Wshadow -Wwrite-strings
ifeq ($(WERROR),1)
WARN += -Werror
endif

# What each part uses (pkg-config names); a binary links only its parts'.
STORAGE_PKGS := lmdb libxxhash jansson
PROTO_PKGS   := libprotobuf-c
SERVER_PKGS  := libuv libsystemd libmicrohttpd liburing
CLI_PKGS     := jansson
CLIENT_PKGS  := jansson
PKGS := $(sort $(STORAGE_PKGS) $(PROTO_PKGS) $(SERVER_PKGS) $(CLI_PKGS) $(CLIENT_PKGS))
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) check 2>/dev/null)
pkg_libs = $(shell pkg-config --libs $(1) 2>/dev/null)
ENGRAMD_LIBS = $(call pkg_libs,$(SERVER_PKGS) $(STORAGE_PKGS) $(PROTO_PKGS)) -lm
ENGRAM_LIBS  = $(call pkg_libs,$(CLI_PKGS) $(STORAGE_PKGS) $(PROTO_PKGS)) -lm
CLIENT_LIBS  = $(call pkg_libs,$(PROTO_PKGS) $(CLIENT_PKGS))
# tests and benchmarks: the test support, storage and client libraries
TEST_LIBS    = $(call pkg_libs,$(STORAGE_PKGS) $(PROTO_PKGS) check) -lm

# one version for the daemon, the CLI, the library and the Python package
VERSION   := $(shell cat VERSION)

SAN_FLAGS := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)

ALL_CFLAGS = -std=gnu11 -fPIC -pthread -D_GNU_SOURCE -DENGRAM_VERSION='"$(VERSION)"' \
             $(WARN) $(SAN_FLAGS) \
             -Istorage -Iclient -I$(BUILD)/gen -Itests/support \
             $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(SAN_FLAGS) $(LDFLAGS)

GEN_PB := $(BUILD)/gen/engram.pb-c.c
PB_OBJ := $(BUILD)/gen/engram.pb-c.o

STORAGE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard storage/*.c))
CLIENT_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard client/*.c))
SERVER_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard server/*.c))
CLI_OBJS     := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))
SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/support/*.c))
BENCHLIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard bench/lib/*.c))
TEST_SRCS    := $(wildcard tests/unit/check_*.c tests/integration/check_*.c)
TEST_BINS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
BENCH_BINS   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
# not in `make bench`: needs 33 GiB of disk and a quarter of an hour
SCALE_BIN    := $(BUILD)/bench/scale/bench_scale

LIB_STORAGE := $(BUILD)/libegstorage.a
LIB_PROTO   := $(BUILD)/libegproto.a
LIB_CLIENT  := $(BUILD)/libengram.a
LIB_CLIENT_SO := $(BUILD)/libengram.so.1
LIB_SUPPORT := $(BUILD)/libegtest.a
LIB_BENCH   := $(BUILD)/libegbench.a

ENGRAMD := $(BUILD)/engramd
# engramd with the tests' fault hooks (server/fault.h); never installed
ENGRAMD_FAULTS := $(BUILD)/engramd-faults
ENGRAM  := $(BUILD)/engram

.PHONY: all deps test check run bench bench-scale fuzz soak clean proto-python
.DEFAULT_GOAL := all

# ---- entry points that set up the machine first -------------------------

deps:
	@scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory check

run: deps
	@$(MAKE) --no-print-directory all proto-python
	@scripts/run-demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS) proto-python
	@scripts/bench.sh $(BUILD)

SOAK_SECONDS ?= 600
soak: deps
	@$(MAKE) --no-print-directory all proto-python
	@BUILD=$(BUILD) SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) tests/soak/soak.py

bench-scale: deps
	@$(MAKE) --no-print-directory all $(SCALE_BIN)
	@$(SCALE_BIN)

# ---- build ---------------------------------------------------------------

all: $(ENGRAMD) $(ENGRAM) $(LIB_CLIENT) $(LIB_CLIENT_SO) $(BUILD)/engram.pc

check: all $(ENGRAMD_FAULTS) $(TEST_BINS) $(BENCH_BINS) proto-python
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) PYTHON=$(PYTHON) tests/run.sh

$(GEN_PB): proto/engram.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

# Python code for the clients and tests, generated from the same schema.
proto-python: $(BUILD)/gen/python/engram_pb2.py
$(BUILD)/gen/python/engram_pb2.py: proto/engram.proto
	@mkdir -p $(dir $@)
	protoc --proto_path=proto --python_out=$(dir $@) $<

$(PB_OBJ): $(GEN_PB)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# libengram's copy of the generated code: hidden, so the shared library
# exports only the engram.h API.
PB_CLIENT_OBJ := $(BUILD)/gen/engram.pb-c.hidden.o
$(PB_CLIENT_OBJ): $(GEN_PB)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# the objects that print the version are rebuilt when it changes
$(BUILD)/server/config.o $(BUILD)/cli/main.o: VERSION

# Objects whose source includes the generated header, directly or through
# another header, wait for it to be generated; the preprocessor finds them
# (-MG: the header need not exist yet), and -MMD tracks it from then on.
OBJ_SRCS := $(wildcard storage/*.c client/*.c server/*.c cli/*.c tests/support/*.c)
PB_USERS := $(shell $(CC) -MM -MG -Istorage -Iclient -I$(BUILD)/gen -Itests/support \
                $(OBJ_SRCS) 2>/dev/null | sed -e ':a' -e '/\\$$/{N' -e 's/\\\n//' -e 'ba' -e '}' | \
                awk '/engram\.pb-c\.h/ { print $$2 }')
$(patsubst %.c,$(BUILD)/%.o,$(PB_USERS)): | $(GEN_PB)

$(BUILD)/client/%.o: ALL_CFLAGS += -fvisibility=hidden

$(LIB_STORAGE): $(STORAGE_OBJS)
$(LIB_PROTO): $(PB_OBJ)
$(LIB_CLIENT): $(CLIENT_OBJS) $(PB_CLIENT_OBJ)
$(LIB_SUPPORT): $(SUPPORT_OBJS)
$(LIB_BENCH): $(BENCHLIB_OBJS)
$(LIB_STORAGE) $(LIB_PROTO) $(LIB_CLIENT) $(LIB_SUPPORT) $(LIB_BENCH):
	@rm -f $@
	ar rcs $@ $^

$(LIB_CLIENT_SO): $(CLIENT_OBJS) $(PB_CLIENT_OBJ)
	$(CC) -shared -Wl,-soname,libengram.so.1 $(ALL_LDFLAGS) -o $@ $^ $(CLIENT_LIBS)
	ln -sf libengram.so.1 $(BUILD)/libengram.so

# FORCE (mk/install.mk): the paths are make variables, so a new PREFIX counts
$(BUILD)/engram.pc: client/engram.pc.in FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(ENGRAMD): $(SERVER_OBJS) $(LIB_STORAGE) $(LIB_PROTO)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ENGRAMD_LIBS)

$(BUILD)/server/fault-hooks.o: server/fault.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DED_FAULT_HOOKS -MMD -MP -c -o $@ $<
$(ENGRAMD_FAULTS): $(filter-out $(BUILD)/server/fault.o,$(SERVER_OBJS)) \
                   $(BUILD)/server/fault-hooks.o $(LIB_STORAGE) $(LIB_PROTO)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ENGRAMD_LIBS)

$(ENGRAM): $(CLI_OBJS) $(LIB_STORAGE) $(LIB_CLIENT)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ENGRAM_LIBS)

# A test or benchmark is one source file (some include the generated header).
# benchmarks also link their shared helpers (bench/lib)
$(BENCH_BINS) $(SCALE_BIN): $(LIB_BENCH)
$(BENCH_BINS) $(SCALE_BIN): private LIB_SUPPORT := $(LIB_BENCH) $(LIB_SUPPORT)
$(BENCH_BINS) $(SCALE_BIN): private ALL_CFLAGS += -Ibench/lib
$(BENCH_BINS) $(SCALE_BIN): private TEST_LIBS += $(call pkg_libs,jansson hiredis)
$(TEST_BINS) $(BENCH_BINS) $(SCALE_BIN): $(BUILD)/%: %.c $(LIB_SUPPORT) $(LIB_STORAGE) $(LIB_CLIENT) | $(GEN_PB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< $(LIB_SUPPORT) \
	    $(LIB_STORAGE) $(LIB_CLIENT) $(TEST_LIBS)

# A unit test of a daemon module links that module's objects.
$(BUILD)/tests/unit/check_rowcache: $(BUILD)/server/rowcache.o
$(BUILD)/tests/unit/check_rowcache: private ALL_CFLAGS += -Iserver
$(BUILD)/tests/unit/check_rowcache: private TEST_LIBS += $(BUILD)/server/rowcache.o
POOL_TEST_OBJS := $(BUILD)/server/pool.o $(BUILD)/server/log.o
$(BUILD)/tests/unit/check_pool: $(POOL_TEST_OBJS)
$(BUILD)/tests/unit/check_pool: private ALL_CFLAGS += -Iserver
$(BUILD)/tests/unit/check_pool: private TEST_LIBS += $(POOL_TEST_OBJS) $(call pkg_libs,libuv)
# sees the lengths libengram asks recv for (check_client.c)
$(BUILD)/tests/integration/check_client: private ALL_LDFLAGS += -Wl,--wrap=recv
# counts pool.c's sched_yield calls (check_pool.c)
$(BUILD)/tests/unit/check_pool: private ALL_LDFLAGS += -Wl,--wrap=sched_yield

# ---- fuzzing (clang + libFuzzer) ----------------------------------------

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
fuzz: deps
	@$(MAKE) --no-print-directory $(GEN_PB)
	@scripts/fuzz.sh $(BUILD) $(FUZZ_SRCS)

# ---- install, uninstall, deb: mk/install.mk ------------------------------

include mk/install.mk

clean:
	rm -rf build build-*/

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

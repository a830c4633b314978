# engramd - serves Engram conditional-memory tables from LMDB. See README.md.
#
#   make test            install missing Debian packages, build, run every test
#   make run             same setup, then serve a demo table in the foreground
#   make bench           benchmarks (long; not part of the tests)
#   make SANITIZE=address,undefined test    sanitizer build (in build-address-undefined/)
#   make install PREFIX=/usr DESTDIR=...
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

PKGS := lmdb libuv libprotobuf-c libxxhash jansson libsystemd libmicrohttpd
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) check 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

SAN_FLAGS := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)

ALL_CFLAGS = -std=gnu11 -fPIC -pthread -D_GNU_SOURCE $(WARN) $(SAN_FLAGS) \
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
TEST_SRCS    := $(wildcard tests/unit/check_*.c tests/integration/check_*.c)
TEST_BINS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
BENCH_BINS   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

LIB_STORAGE := $(BUILD)/libegstorage.a
LIB_PROTO   := $(BUILD)/libegproto.a
LIB_CLIENT  := $(BUILD)/libengram.a
LIB_CLIENT_SO := $(BUILD)/libengram.so.1
LIB_SUPPORT := $(BUILD)/libegtest.a

ENGRAMD := $(BUILD)/engramd
ENGRAM  := $(BUILD)/engram

.PHONY: all deps test check run bench fuzz install clean proto-python
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

# ---- build ---------------------------------------------------------------

all: $(ENGRAMD) $(ENGRAM) $(LIB_CLIENT) $(LIB_CLIENT_SO) $(BUILD)/engram.pc

check: all $(TEST_BINS) $(BENCH_BINS) proto-python
	@BUILD=$(BUILD) PYTHON=$(PYTHON) tests/run.sh

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

# every object needs the generated header
$(BUILD)/%.o: %.c $(GEN_PB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/client/%.o: ALL_CFLAGS += -fvisibility=hidden

$(LIB_STORAGE): $(STORAGE_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(LIB_PROTO): $(PB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(LIB_CLIENT): $(CLIENT_OBJS) $(PB_CLIENT_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(LIB_SUPPORT): $(SUPPORT_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(LIB_CLIENT_SO): $(CLIENT_OBJS) $(PB_CLIENT_OBJ)
	$(CC) -shared -Wl,-soname,libengram.so.1 $(ALL_LDFLAGS) -o $@ $^ \
	    $(shell pkg-config --libs libprotobuf-c 2>/dev/null)
	ln -sf libengram.so.1 $(BUILD)/libengram.so

$(BUILD)/engram.pc: client/engram.pc.in
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' $< > $@

$(ENGRAMD): $(SERVER_OBJS) $(LIB_STORAGE) $(LIB_PROTO)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(ENGRAM): $(CLI_OBJS) $(LIB_STORAGE) $(LIB_CLIENT)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/%: tests/%.c $(LIB_SUPPORT) $(LIB_STORAGE) $(LIB_CLIENT) $(GEN_PB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< $(LIB_SUPPORT) \
	    $(LIB_STORAGE) $(LIB_CLIENT) $(PKG_LIBS) $(CHECK_LIBS) -lm

$(BUILD)/bench/%: bench/%.c $(LIB_SUPPORT) $(LIB_STORAGE) $(LIB_CLIENT) $(GEN_PB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< $(LIB_SUPPORT) \
	    $(LIB_STORAGE) $(LIB_CLIENT) $(PKG_LIBS) $(CHECK_LIBS) -lm

# A unit test of a daemon module links that module's object.
$(BUILD)/tests/unit/check_rowcache: $(BUILD)/server/rowcache.o
$(BUILD)/tests/unit/check_rowcache: private ALL_CFLAGS += -Iserver
$(BUILD)/tests/unit/check_rowcache: private ALL_LDFLAGS += $(BUILD)/server/rowcache.o

# ---- fuzzing (clang + libFuzzer) ----------------------------------------

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
fuzz: deps
	@$(MAKE) --no-print-directory $(GEN_PB)
	@scripts/fuzz.sh $(BUILD) $(FUZZ_SRCS)

# ---- install --------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 755 $(ENGRAMD) $(ENGRAM) $(DESTDIR)$(BINDIR)/
	install -m 644 $(LIB_CLIENT) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_CLIENT_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libengram.so.1 $(DESTDIR)$(LIBDIR)/libengram.so
	install -m 644 client/engram.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(BUILD)/engram.pc $(DESTDIR)$(LIBDIR)/pkgconfig/

clean:
	rm -rf build build-*/

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- Python client: engram_client plus its generated engram_pb2 ------------

PYTHON_SITE ?= /usr/lib/python3/dist-packages
.PHONY: install-python
install: install-python
install-python: proto-python
	install -d $(DESTDIR)$(PYTHON_SITE)/engram_client
	install -m 644 client/python/engram_client/*.py $(BUILD)/gen/python/engram_pb2.py \
	    $(DESTDIR)$(PYTHON_SITE)/engram_client/

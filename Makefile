# amtca: plain Makefile, out-of-tree objects under $(BUILD)/.
#   make            build/amtca and build/amtsim
#   make check      every test (unit, integration, fuzz seed replay)
#   make asan       the same under ASan+UBSan, in build-asan/
#   make valgrind   unit tests, and amtca in the CA CLI test, under valgrind
#   make fuzz       libFuzzer targets in build-fuzz/
#   make bench      benchmarks (not tests): ratios measured in one run
#   make demo       the main job on embedded defaults
#   make install    honours PREFIX and DESTDIR

PREFIX  ?= /usr/local
DESTDIR ?=
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BUILD   ?= build
CC      ?= cc

PKGS     := libssl libcrypto p11-kit-1 libxml-2.0 libcurl sqlite3 libpq libmicrohttpd \
	    gnutls jansson libargon2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -I. $(WARN) $(PKG_CFLAGS) $(CFLAGS) $(SAN)
LDLIBS  := $(PKG_LIBS) -lpthread -ldl
ALL_LDFLAGS := $(LDFLAGS) $(SAN)

# The core (enroll/: composition root, engine, doctor checks, credential
# rule) is in the library with the modules; front ends link it.
LIB_SRC  := $(wildcard common/*.c hsm/*.c ca/*.c amt/*.c signer/*.c enroll/*.c)
CLI_SRC  := $(wildcard enroll/cli/*.c enroll/serve/*.c)
SIM_SRC  := $(wildcard amt/sim/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
SIM_OBJ  := $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libamtca.a

UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(ITEST_SRC:tests/%.c=$(BUILD)/tests/%)

MAN1 := docs/man/amtca.1 docs/man/amtsim.1
MAN5 := docs/man/amtca.conf.5

.SECONDEXPANSION:

.PHONY: all deps check unit asan valgrind fuzz fuzz-replay bench demo install clean

all: $(BUILD)/amtca $(BUILD)/amtsim

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/amtca: $(CLI_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/amtsim: $(SIM_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(SIM_OBJ) $(LIB) $(LDLIBS)

# Tests link the library plus, for a module's own tests, any test helpers
# beside them (tests/unit/<mod>/helper_*.c).
$(BUILD)/tests/%: tests/%.c $(LIB) $$(wildcard $$(dir tests/%)helper_*.c)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(wildcard $(dir $<)helper_*.c) \
	    $(LIB) $(LDLIBS) -lcmocka $(ALL_LDFLAGS)

unit: $(UNIT_BIN)

check: deps
	@$(MAKE) --no-print-directory all unit $(ITEST_BIN)
	@$(MAKE) --no-print-directory fuzz
	@BUILD=$(BUILD) FUZZ_BUILD=build-fuzz sh tests/run.sh

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" all unit \
	    $(ITEST_SRC:tests/%.c=build-asan/tests/%)
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 NO_FUZZ=1 sh tests/run.sh

valgrind: deps
	@$(MAKE) --no-print-directory all unit
	@BUILD=$(BUILD) VALGRIND=1 VALGRIND_CLI=1 NO_FUZZ=1 UNIT_ONLY=1 sh tests/run.sh

# libFuzzer: clang, instrumented library, one binary per tests/fuzz/fuzz_*.c.
FUZZ_BUILD := build-fuzz
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_SIM_OBJ := $(filter-out $(FUZZ_BUILD)/obj/amt/sim/main.o,$(SIM_SRC:%.c=$(FUZZ_BUILD)/obj/%.o))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -I. -Itests $(WARN) $(PKG_CFLAGS) -O1 -g \
	-fsanitize=fuzzer-no-link,address,undefined

fuzz: $(FUZZ_BIN)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ) $(FUZZ_SIM_OBJ)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_SIM_OBJ) $(FUZZ_LIB_OBJ) $(LDLIBS)

# deps first, then a fresh make: the pkg-config flags above are computed
# when make starts, which on a fresh machine is before the -dev packages.
bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bash scripts/bench.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 0755 $(BUILD)/amtca $(BUILD)/amtsim $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|g' scripts/amtca-fleet.service \
	    >$(DESTDIR)$(SYSTEMDUNITDIR)/amtca-fleet.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/amtca-fleet.service
	install -m 0644 scripts/amtca-fleet.timer $(DESTDIR)$(SYSTEMDUNITDIR)/
	sed 's|@BINDIR@|$(PREFIX)/bin|g' scripts/amtca.service \
	    >$(DESTDIR)$(SYSTEMDUNITDIR)/amtca.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/amtca.service

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)

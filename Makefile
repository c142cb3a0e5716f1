# mailfs - mount an IMAP account as a directory tree.
#
#   make            build ./mailfs (objects in build/)
#   make asan       ASan+UBSan build in build-asan/ (used by the tests)
#   make tsan       ThreadSanitizer build in build-tsan/ (used by the tests)
#   make unit       build and run the C unit tests
#   make fuzz       build the libFuzzer targets (clang) in build-fuzz/
#   make check      the whole test suite against a private Dovecot (as root)
#   make demo       throwaway server with sample mail, mounted at ./mail
#   make bench      benchmarks (see README)
#   make lint       clang-format check and banned-call check
#   make install    mailfs, its man pages and its systemd user unit under
#                   $(DESTDIR)$(PREFIX)
#                   (/usr/local)
#
# CFLAGS, CPPFLAGS and LDFLAGS are honoured (a distribution's hardening
# flags), PKG_CONFIG names pkg-config, and WERROR= turns warnings back
# into warnings (the tests build with -Werror).

VERSION = 0.1.0
PREFIX ?= /usr/local
MANDIR ?= $(PREFIX)/share/man
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
CC ?= cc
PKG_CONFIG ?= pkg-config
BUILD ?= build
PKGS = fuse3 libcurl gmime-3.0 sqlite3 openssl

WERROR ?= -Werror
WARN = -Wall -Wextra -Wmissing-declarations -Wwrite-strings $(WERROR)
CFLAGS ?= -O2 -g
SANFLAGS =
ifeq ($(SAN),1)
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ifeq ($(SAN),thread)
SANFLAGS = -fsanitize=thread -fno-omit-frame-pointer
endif
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DMAILFS_VERSION='"$(VERSION)"' $(WARN) \
	$(CPPFLAGS) $(CFLAGS) $(SANFLAGS) -Iinclude \
	$(shell $(PKG_CONFIG) --cflags $(PKGS))
LIBS = $(LDFLAGS) $(shell $(PKG_CONFIG) --libs $(PKGS)) -lpthread

LIB_SRC = $(wildcard util/*.c) $(wildcard imap/*.c) $(wildcard smtp/*.c) \
	$(filter-out fs/main.c,$(wildcard fs/*.c)) $(wildcard fs/core/*.c) \
	$(wildcard fs/fuse/*.c)
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)

all: mailfs

mailfs: $(BUILD)/mailfs
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/mailfs: $(BUILD)/fs/main.o $(BUILD)/libmailfs.a
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libmailfs.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c $(wildcard include/*.h imap/*.h fs/*/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Helpers the unit tests share (the scripted IMAP server).
UNIT_HELP = $(BUILD)/unit/fake_imap.o

$(BUILD)/unit/fake_imap.o: tests/unit/fake_imap.c tests/unit/fake_imap.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -Itests/unit -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(UNIT_HELP) $(BUILD)/libmailfs.a
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(UNIT_HELP) $(BUILD)/libmailfs.a $(LIBS)

unit-build: $(UNIT_BIN)

# Every test runs; the target fails if any of them did.
unit: $(UNIT_BIN)
	@rc=0; for t in $(UNIT_BIN); do \
		$$t || { echo "make unit: $$t failed (exit status $$?)"; rc=1; }; \
	done; exit $$rc

asan:
	$(MAKE) BUILD=build-asan SAN=1 build-asan/mailfs unit-build

tsan:
	$(MAKE) BUILD=build-tsan SAN=thread build-tsan/mailfs

FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Iinclude $(shell $(PKG_CONFIG) --cflags $(PKGS))
fuzz:
	@mkdir -p build-fuzz
	@for f in $(FUZZ_SRC); do \
		n=$$(basename $$f .c); \
		echo "  FUZZ $$n"; \
		clang $(FUZZ_CFLAGS) -o build-fuzz/$$n $$f $(LIB_SRC) $(LIBS) || exit 1; \
	done

check:
	tests/run

demo: mailfs
	tests/demo

bench: mailfs
	bench/run

lint:
	tests/lint

# mount(8) runs mount.fuse3 with a PATH of its own: for /etc/fstab the
# binary must be in a system directory such as $(PREFIX)/bin.
install: mailfs
	install -D -m 0755 mailfs $(DESTDIR)$(PREFIX)/bin/mailfs
	install -d $(DESTDIR)$(USERUNITDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|g' systemd/mailfs@.service.in \
		> $(DESTDIR)$(USERUNITDIR)/mailfs@.service
	chmod 0644 $(DESTDIR)$(USERUNITDIR)/mailfs@.service
	for m in man/*.[1-8]; do \
		s=$${m##*.}; \
		install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} || exit 1; \
	done

clean:
	rm -rf build build-asan build-tsan build-fuzz mailfs

.PHONY: all mailfs unit unit-build asan tsan fuzz check demo bench lint install clean

# Postern top-level build.  Sources are found, not listed: lib/**.cc becomes
# libpostern.a, every program folder's *.cc becomes one program, and
# t/unit/*_test.cc becomes one Catch2 test binary.  Adding a file needs no edit here.

CXX      ?= g++
PREFIX   ?= /usr
DESTDIR  ?=
SANITIZE ?=

# A sanitizer build lives in its own folder so objects are never mixed.
ifeq ($(SANITIZE),)
BUILD    ?= build
else
BUILD    ?= build-sanitize
SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
# GCC 12 reports false maybe-uninitialized warnings in the library under sanitizers.
SAN_CXXFLAGS = -Wno-maybe-uninitialized
endif

CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -Werror -Wno-missing-field-initializers \
            -Ilib $(shell pkg-config --cflags libmariadb 2>/dev/null) $(SAN_FLAGS) $(SAN_CXXFLAGS)
CPPFLAGS += -MMD -MP
LDFLAGS  += $(SAN_FLAGS)
LDLIBS   += -levent -levent_openssl -ldb -lresolv $(shell pkg-config --libs libmariadb 2>/dev/null || echo -lmariadb) \
            -lssl -lcrypto -lcrypt

# Programs: one folder each, with its main.cc. Commands are installed in sbin,
# daemons in daemon_directory ($PREFIX/lib/postern), where master finds them.
COMMANDS := postconf postmap postalias postern postcat postsuper postqueue sendmail postdrop postpasswd
DAEMONS  := master pickup cleanup qmgr local bounce smtpd smtp auth virtual
PROGRAMS := $(COMMANDS) $(DAEMONS)
# Programs also run under another name (they look at argv[0]): link:program.
ALIASES  := newaliases:postalias mailq:postqueue
LINKS    := $(foreach a,$(ALIASES),$(firstword $(subst :, ,$(a))))

LIB_SRCS  := $(wildcard lib/*/*.cc)
LIB_OBJS  := $(LIB_SRCS:%.cc=$(BUILD)/%.o)
LIB_A     := $(BUILD)/libpostern.a
TEST_SRCS := $(wildcard t/unit/*.cc)
TEST_OBJS := $(TEST_SRCS:%.cc=$(BUILD)/%.o)
TEST_BIN  := $(BUILD)/t/unit-tests
BINS      := $(PROGRAMS:%=$(BUILD)/bin/%)

.PHONY: all deps check unit integration run man install uninstall clean
all: $(BINS) $(LINKS:%=$(BUILD)/bin/%) $(TEST_BIN)

$(BUILD)/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

define program_rule
$(BUILD)/bin/$(1): $(patsubst %.cc,$(BUILD)/%.o,$(wildcard $(1)/*.cc)) $(LIB_A)
	@mkdir -p $$(@D)
	$$(CXX) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

define link_rule
$(BUILD)/bin/$(1): $(BUILD)/bin/$(2)
	ln -sf $(2) $$@
endef
$(foreach a,$(ALIASES),$(eval $(call link_rule,$(word 1,$(subst :, ,$(a))),$(word 2,$(subst :, ,$(a))))))

$(TEST_BIN): $(TEST_OBJS) $(LIB_A)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@tools/install-deps

# The whole suite: packages, build, unit tests, integration tests, one summary line.
check: deps
	$(MAKE) -j$$(nproc) all
	BUILD=$(BUILD) tools/run-tests

unit: all
	BUILD=$(BUILD) tools/run-tests unit

integration: all
	BUILD=$(BUILD) tools/run-tests integration

# Sets up an instance on the embedded default in ./run and runs it in the foreground.
run: all
	BUILD=$(BUILD) tools/run-instance

# Manual pages from each program's header comment and from the parameter table.
man: all
	tools/mkman $(BUILD) $(COMMANDS)

# Administrative commands go to sbin; newaliases and mailq also to bin, where
# distributions keep them. The configuration in /etc/postern is installed only where none exists.
MANDIR := $(DESTDIR)$(PREFIX)/share/man
install: all man
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/postern $(DESTDIR)/etc/postern \
	           $(DESTDIR)$(PREFIX)/share/doc/postern $(MANDIR)/man1 $(MANDIR)/man5
	for p in $(COMMANDS); do install -m 755 $(BUILD)/bin/$$p $(DESTDIR)$(PREFIX)/sbin/$$p; done
	@# postdrop is set-gid setgid_group (postdrop), the one way into maildrop for users.
	if [ "$$(id -u)" = 0 ]; then getent group postdrop >/dev/null || groupadd --system postdrop; \
	  chgrp postdrop $(DESTDIR)$(PREFIX)/sbin/postdrop && chmod 2755 $(DESTDIR)$(PREFIX)/sbin/postdrop; \
	else echo "not root: $(DESTDIR)$(PREFIX)/sbin/postdrop is not set-gid postdrop; users cannot submit mail"; fi
	for p in $(DAEMONS); do install -m 755 $(BUILD)/bin/$$p $(DESTDIR)$(PREFIX)/lib/postern/$$p; done
	ln -sf ../sbin/sendmail $(DESTDIR)$(PREFIX)/lib/sendmail
	for a in $(ALIASES); do link=$${a%%:*}; prog=$${a#*:}; \
	  ln -sf $$prog $(DESTDIR)$(PREFIX)/sbin/$$link; ln -sf ../sbin/$$prog $(DESTDIR)$(PREFIX)/bin/$$link; \
	done
	for f in conf/*; do \
	  [ -e $(DESTDIR)/etc/postern/$$(basename $$f) ] || install -m 644 $$f $(DESTDIR)/etc/postern/; \
	done
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/postern/
	install -m 644 $(BUILD)/man/*.1 $(MANDIR)/man1/
	install -m 644 $(BUILD)/man/*.5 $(MANDIR)/man5/

# Removes what install put there, but never the configuration an administrator edited.
uninstall:
	for p in $(COMMANDS) $(LINKS); do rm -f $(DESTDIR)$(PREFIX)/sbin/$$p; done
	for p in $(DAEMONS); do rm -f $(DESTDIR)$(PREFIX)/lib/postern/$$p; done
	rm -f $(DESTDIR)$(PREFIX)/lib/sendmail
	for p in $(LINKS); do rm -f $(DESTDIR)$(PREFIX)/bin/$$p; done
	for p in $(COMMANDS); do rm -f $(MANDIR)/man1/$$p.1; done
	rm -f $(MANDIR)/man5/postern-params.5
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/postern

clean:
	rm -rf build build-sanitize

-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(wildcard $(BUILD)/*/*.d)

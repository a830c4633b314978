# mk/install.mk - make install / uninstall / deb, included by the Makefile.
#
# Paths (override any): PREFIX (/usr/local), BINDIR, LIBDIR, INCDIR, MANDIR,
# DOCDIR, SYSCONFDIR (/etc: the config is /etc/engramd/engramd.conf), and
# where systemd looks: SYSTEMDUNITDIR, SYSUSERSDIR, TMPFILESDIR under
# $(PREFIX)/lib, which systemd reads for PREFIX=/usr and /usr/local
# (`systemd-analyze unit-paths`); for another PREFIX set
# SYSTEMDUNITDIR=/etc/systemd/system and the like. DESTDIR stages it all.

MANDIR         ?= $(PREFIX)/share/man
DOCDIR         ?= $(PREFIX)/share/doc/engramd
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR    ?= $(PREFIX)/lib/tmpfiles.d

UNITS := $(BUILD)/systemd/engramd.service $(BUILD)/systemd/engramd.socket
MANS  := man/engramd.8 man/engram.1
DOCS  := README.md $(wildcard docs/*.md)
CONF  := $(DESTDIR)$(SYSCONFDIR)/engramd/engramd.conf

.PHONY: install uninstall deb units

units: $(UNITS)
# the paths are make variables: regenerate every time, so a new PREFIX counts
$(BUILD)/systemd/engramd.service: systemd/engramd.service.in FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@DOCDIR@|$(DOCDIR)|g' $< > $@
$(BUILD)/systemd/engramd.socket: systemd/engramd.socket
	@mkdir -p $(dir $@)
	cp $< $@
.PHONY: FORCE
FORCE:

install: all units
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/engramd
	install -m 755 $(ENGRAMD) $(ENGRAM) $(DESTDIR)$(BINDIR)/
	install -m 644 $(LIB_CLIENT) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_CLIENT_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libengram.so.1 $(DESTDIR)$(LIBDIR)/libengram.so
	install -m 644 client/engram.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(BUILD)/engram.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 644 man/engram.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/engramd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 644 $(UNITS) $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 644 systemd/engramd.sysusers $(DESTDIR)$(SYSUSERSDIR)/engramd.conf
	install -m 644 systemd/engramd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/engramd.conf
	@# an operator's config is never overwritten
	if [ -e $(CONF) ]; then echo "keeping $(CONF)"; \
	else install -m 644 systemd/engramd.conf.example $(CONF); fi
	@# on the live system: the linker cache, the user and the state directory
	@# (systemd-sysusers and systemd-tmpfiles need no running systemd)
	if [ -z "$(DESTDIR)" ]; then \
	    ldconfig; \
	    systemd-sysusers $(SYSUSERSDIR)/engramd.conf; \
	    systemd-tmpfiles --create $(TMPFILESDIR)/engramd.conf; \
	    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# Removes what install put there except the config (an operator's edits)
# and /var/lib/engramd (the tables); the user stays too.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/engramd $(DESTDIR)$(BINDIR)/engram \
	    $(DESTDIR)$(LIBDIR)/libengram.a $(DESTDIR)$(LIBDIR)/libengram.so.1 \
	    $(DESTDIR)$(LIBDIR)/libengram.so $(DESTDIR)$(INCDIR)/engram.h \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/engram.pc \
	    $(DESTDIR)$(MANDIR)/man1/engram.1 $(DESTDIR)$(MANDIR)/man8/engramd.8 \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/engramd.service $(DESTDIR)$(SYSTEMDUNITDIR)/engramd.socket \
	    $(DESTDIR)$(SYSUSERSDIR)/engramd.conf $(DESTDIR)$(TMPFILESDIR)/engramd.conf \
	    $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	-rmdir $(DESTDIR)$(DOCDIR)
	@echo "kept $(CONF) and /var/lib/engramd; remove them by hand"
	if [ -z "$(DESTDIR)" ]; then ldconfig; fi

# A Debian package built with debhelper (debian/): ./engramd_VERSION_ARCH.deb,
# built with its .changes and .buildinfo in build-deb/ (nothing outside the
# tree; dpkg-buildpackage's default is the parent directory).
DEB_ARCH = $(shell dpkg --print-architecture)
deb: deps
	dpkg-buildpackage -b -uc -us \
	    --buildinfo-file=build-deb/engramd_$(VERSION)_$(DEB_ARCH).buildinfo \
	    --changes-file=build-deb/engramd_$(VERSION)_$(DEB_ARCH).changes \
	    --buildinfo-option=-ubuild-deb --changes-option=-ubuild-deb
	cp build-deb/engramd_$(VERSION)_$(DEB_ARCH).deb .

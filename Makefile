# dm-repl: top-level build.
#
#   make            build dm-repl.ko (against KDIR) and the userspace tools
#   make demo       install what is needed, then show capture in a guest
#   make check      install what is needed, then run every test
#   make bench      install what is needed, then run the benchmarks
#   make install    repltool, repld, their man pages and repld's systemd unit
#                   (PREFIX=/usr/local, DESTDIR for staging)
#
# KVER defaults to the newest kernel under /lib/modules that has a build
# tree (the host's own kernel may have none: tests run Debian's in qemu).

KVER ?= $(shell ls -1 /lib/modules 2>/dev/null | sort -V | \
	while read k; do [ -e /lib/modules/$$k/build ] && echo $$k; done | tail -1)
KDIR ?= /lib/modules/$(KVER)/build
export KVER

.PHONY: all module userspace clean deps check demo bench check-run install

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system

all: module userspace

module:
	@test -d "$(KDIR)" || { echo "make: no kernel build tree at '$(KDIR)' (install linux-headers-amd64 or set KDIR)" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

userspace:
	$(MAKE) -C userspace

deps:
	tests/install-deps.sh

# The two README commands: each installs what it needs first. The sub-make
# starts after the install so that KVER sees the freshly installed kernel.
check: deps
	$(MAKE) check-run

check-run: all
	tests/run-all.sh

demo: deps
	$(MAKE) all
	DMREPL_KO=$(CURDIR)/dm-repl.ko tests/guest/vm.sh --quiet --out build/demo \
		-- bash tests/guest/demo.sh; rc=$$?; cat build/demo/output.log; exit $$rc

bench: deps
	$(MAKE) all
	tests/bench/run.sh

install: userspace
	install -D -m 0755 userspace/repltool/repltool $(DESTDIR)$(SBINDIR)/repltool
	install -D -m 0755 userspace/repld/repld $(DESTDIR)$(SBINDIR)/repld
	install -D -m 0644 Documentation/repltool.8 $(DESTDIR)$(MANDIR)/man8/repltool.8
	install -D -m 0644 Documentation/repld.8 $(DESTDIR)$(MANDIR)/man8/repld.8
	install -D -m 0644 Documentation/dm-repl.conf.5 $(DESTDIR)$(MANDIR)/man5/dm-repl.conf.5
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|' userspace/repld/repld.service.in \
		>$(DESTDIR)$(UNITDIR)/repld.service
	install -d -m 0700 $(DESTDIR)/etc/dm-repl

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	-$(MAKE) -C userspace clean
	-$(MAKE) -C tests/unit clean
	rm -rf build

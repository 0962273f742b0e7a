# SPDX-License-Identifier: GPL-2.0
# Compiler flags shared by userspace/Makefile and tests/unit/Makefile.
# Included with REPO set to the top of the tree.

CC ?= cc
DMREPL_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g \
	-I$(REPO)/uapi -I$(REPO)/userspace/lib
DMREPL_LDLIBS := -lext2fs -lcom_err -lssl -lcrypto -ldevmapper
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all

ifeq ($(SANITIZE),1)
DMREPL_CFLAGS += $(SANITIZE_FLAGS)
DMREPL_LDFLAGS += $(SANITIZE_FLAGS)
endif

DMREPL_LIB_SRCS := $(addprefix $(REPO)/userspace/lib/,crc32c.c rec.c stream.c ring.c meta.c apply.c ship.c resync.c \
	resync_ctl.c verify.c conf.c)
DMREPL_LIB_SRCS += $(REPO)/userspace/lib/tls.c

# The repld wire protocol (proto.c) compresses batches with zstd.
DMREPL_LIB_SRCS += $(REPO)/userspace/lib/proto.c
DMREPL_LDLIBS += -lzstd

// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The secondary's end, for the commands that write batches to it (apply,
 * replicate): opening its device, why it refused a batch, the summary.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "dmrepl.h"
#include "repltool.h"

void batch_opts_init(struct batch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->batch_kb = DMREPL_APPLY_BATCH_DEFAULT / 1024;
	opterr = 0;
	optind = 1;
}

static int parse_batch_kb(const char *cmd, const char *arg, __u64 *kb)
{
	if (parse_positive(arg, kb) || *kb > DM_REPL_APPLY_BATCH_MAX / 1024)
		return usage_err(cmd, "--batch-kb wants a number from 1 to %u, not \"%s\"",
				 DM_REPL_APPLY_BATCH_MAX / 1024, arg);
	return 0;
}

int batch_opt(const char *cmd, int c, struct batch_opts *o, void (*usage)(FILE *),
	      char **argv)
{
	switch (c) {
	case OPT_BATCH_KB:
		return parse_batch_kb(cmd, optarg, &o->batch_kb);
	case OPT_STATS:
		o->stats = true;
		return 0;
	case 'h':
		usage(stdout);
		return -1;
	}
	return getopt_error(cmd, c, argv);
}

int open_secondary(const char *cmd, const char *target, struct secondary *s)
{
	struct dm_repl_group_info info;
	char buf[32];
	int ret;

	s->target = target;
	s->dev_fd = -1;
	s->info_fd = open_group(target, O_RDONLY, &info, s->path, sizeof(s->path));
	if (s->info_fd < 0)
		return -1;
	if (info.role != DM_REPL_ROLE_SECONDARY) {
		err_msg("%s: %s: group \"%.*s\" is %s; %s writes to a secondary group only",
			cmd, s->path, DM_REPL_GROUP_NAME_MAX, info.name,
			role_name(info.role, buf, sizeof(buf)), cmd);
		return -1;
	}
	ret = dmrepl_apply_info(s->info_fd, &s->before);
	if (ret) {
		err_msg("%s: DM_REPL_IOC_APPLY_INFO: %s", s->path, strerror(-ret));
		return -1;
	}
	s->dev_fd = open(s->path, O_WRONLY | O_CLOEXEC);
	if (s->dev_fd >= 0)
		return 0;
	err_msg("%s: open for writing: %s", s->path, strerror(errno));
	return -1;
}

void close_secondary(struct secondary *s)
{
	if (s->info_fd >= 0)
		close(s->info_fd);
	if (s->dev_fd >= 0)
		close(s->dev_fd);
	s->info_fd = s->dev_fd = -1;
}

void report_refused(const char *cmd, const struct secondary *s,
		    const struct dmrepl_batch *b, int err)
{
	struct dm_repl_apply_info ai;
	const char *reason;

	if (err == -EIO && b->written >= 0) {
		err_msg("%s: %s: short write of the batch of seq %llu..%llu: %ld of %zu "
			"bytes", cmd, s->target, (unsigned long long)b->first_seq,
			(unsigned long long)b->last_seq, b->written, b->batch_len);
		return;
	}
	if (dmrepl_apply_info(s->info_fd, &ai) || ai.last_error != err) {
		err_msg("%s: %s: batch of seq %llu..%llu refused: %s", cmd, s->target,
			(unsigned long long)b->first_seq, (unsigned long long)b->last_seq,
			strerror(-err));
		return;
	}
	reason = dmrepl_apply_reason_name(ai.last_reason);
	if (reason)
		err_msg("%s: %s: batch refused at seq %llu: %s (%s)", cmd, s->target,
			(unsigned long long)ai.last_error_seq, reason, strerror(-err));
	else
		err_msg("%s: %s: batch refused at seq %llu: reason %u (%s)", cmd,
			s->target, (unsigned long long)ai.last_error_seq,
			ai.last_reason, strerror(-err));
}

static void print_stats(const struct secondary *s, const struct dmrepl_batch *b,
			__u64 skipped)
{
	struct dm_repl_apply_info after;
	int ret = dmrepl_apply_info(s->info_fd, &after);

	if (ret) {
		err_msg("%s: DM_REPL_IOC_APPLY_INFO: %s", s->path, strerror(-ret));
		return;
	}
	skipped += after.skipped - s->before.skipped;
	printf("%s: records %llu batches %llu bytes %llu skipped %llu applied_seq %llu\n",
	       s->path, (unsigned long long)b->records, (unsigned long long)b->batches,
	       (unsigned long long)b->bytes, (unsigned long long)skipped,
	       (unsigned long long)after.applied_seq);
}

int finish_batches(const struct secondary *s, const struct dmrepl_batch *b, bool stats,
		   __u64 skipped, int ret)
{
	if (stats && s->info_fd >= 0 && s->dev_fd >= 0)
		print_stats(s, b, skipped);
	if (fflush(stdout) && ret == EXIT_OK) {
		err_msg("write of the summary: %s", strerror(errno));
		ret = EXIT_RUNTIME;
	}
	return ret;
}

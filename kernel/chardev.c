// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/dm-repl/<group>: the ring for the daemon. mmap() of the ring
 * (read-only), poll() for committed records, and ioctls for group facts,
 * counters, the dirty bitmaps, releasing records, resync and verify, and a
 * secondary's generations.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "repl.h"

atomic_t repl_live_files = ATOMIC_INIT(0);

/* One per open file. */
struct repl_file {
	struct repl_group *group;
	u64 seen_commits;	/* commit count poll() last reported */
};

static int repl_open(struct inode *inode, struct file *file)
{
	/* misc_open() set private_data and holds misc_mtx: g is registered. */
	struct repl_group *g = container_of(file->private_data,
					    struct repl_group, misc);
	struct repl_file *rf;

	rf = kzalloc(sizeof(*rf), GFP_KERNEL);
	if (!rf)
		return -ENOMEM;
	kref_get(&g->kref);
	rf->group = g;
	file->private_data = rf;
	atomic_inc(&repl_live_files);
	return stream_open(inode, file);
}

static int repl_release(struct inode *inode, struct file *file)
{
	struct repl_file *rf = file->private_data;

	repl_group_put(rf->group);
	kfree(rf);
	atomic_dec(&repl_live_files);
	return 0;
}

static __poll_t repl_poll(struct file *file, poll_table *wait)
{
	struct repl_file *rf = file->private_data;
	struct repl_group *g = rf->group;
	u64 commits;

	__poll_t out = 0;

	poll_wait(file, &g->poll_wait, wait);
	/* Full barrier: pairs with test_and_set_bit() in group_wake(). */
	test_and_clear_bit(REPL_WAKE_PENDING, &g->flags);
	if (READ_ONCE(g->dead))
		return EPOLLHUP;
	/* A secondary takes batches at any time; "commits" count its batches. */
	if (g->role == DM_REPL_ROLE_SECONDARY)
		out = EPOLLOUT | EPOLLWRNORM;
	commits = atomic64_read(&g->commits);
	if (commits == rf->seen_commits)
		return out;
	rf->seen_commits = commits;
	return out | EPOLLIN | EPOLLRDNORM;
}

static ssize_t repl_write(struct file *file, const char __user *buf,
			  size_t count, loff_t *ppos)
{
	struct repl_file *rf = file->private_data;

	return repl_apply_write(rf->group, buf, count);
}

static int repl_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct repl_file *rf = file->private_data;
	struct repl_ring *ring = &rf->group->ring;
	unsigned long len = vma->vm_end - vma->vm_start;

	if (rf->group->role != DM_REPL_ROLE_PRIMARY)
		return -ENODEV;		/* a secondary's ring is not in use */
	if (vma->vm_flags & VM_WRITE)
		return -EPERM;
	if (vma->vm_pgoff || len > PAGE_SIZE + 2 * ring->size)
		return -EINVAL;
	vma->vm_flags &= ~VM_MAYWRITE;
	return remap_vmalloc_range(vma, ring->ctl, 0);
}

static void fill_volume_info(struct dm_repl_volume_info *vi,
			     const struct repl_volume *v)
{
	vi->sectors = v->sectors;
	vi->dirty_regions = atomic64_read(&v->dirty);
	vi->nr_regions = v->nr_regions;
	vi->region_sectors = 1U << v->region_shift;
	vi->index = v->index;
	vi->dev_major = MAJOR(v->data_dev);
	vi->dev_minor = MINOR(v->data_dev);
}

static void fill_ring_info(struct dm_repl_group_info *info,
			   struct repl_ring *ring)
{
	unsigned long flags;

	info->data_size = ring->size;
	info->mmap_size = PAGE_SIZE + 2 * ring->size;
	spin_lock_irqsave(&ring->lock, flags);
	info->next_seq = ring->next_seq;
	info->epoch = ring->epoch;
	info->producer_pos = ring->ctl->producer_pos;
	info->released_pos = ring->ctl->released_pos;
	info->released_seq = ring->ctl->released_seq;
	info->stream = ring->stream;
	spin_unlock_irqrestore(&ring->lock, flags);
}

static void fill_group_info(struct dm_repl_group_info *info,
			    struct repl_group *g)
{
	struct repl_counters *c = &g->cnt;
	unsigned int i;

	info->abi_version = DM_REPL_ABI_VERSION;
	info->role = g->role;
	strscpy(info->name, g->name, sizeof(info->name));
	fill_ring_info(info, &g->ring);
	/*
	 * Sequences start at 1, positions at 0. Positions never go back; a
	 * promotion may number on lower than the ring did (promote()).
	 */
	info->records = info->next_seq - 1;
	info->record_bytes = info->producer_pos;
	info->resync_regions = atomic64_read(&g->resync.regions);
	info->departed_volumes = READ_ONCE(g->resync.departed[0]);
	info->resynced_regions = atomic64_read(&g->resync.sent);
	info->resync_blocks_unsaved = atomic64_read(&g->resync.unsaved_blocks);
	info->resync_blocks_saved = atomic64_read(&g->resync.saved_blocks);
	info->resync_regions_released = repl_resync_releasing(g);
	info->discarded = atomic64_read(&c->discarded);
	info->overflows = atomic64_read(&c->overflows);
	info->block_waits = atomic64_read(&c->block_waits);
	info->block_timeouts = atomic64_read(&c->block_timeouts);
	info->wakeups = atomic64_read(&c->wakeups);

	mutex_lock(&g->lock);
	/*
	 * Under g->lock: an end of resync clears both (maybe_uptodate(),
	 * save_clean()). A reason is set before the state, with no lock
	 * (repl_group_behind()): the state is read first.
	 */
	info->state = test_bit(REPL_BEHIND, &g->flags) ?
		DM_REPL_STATE_BEHIND : DM_REPL_STATE_UPTODATE;
	/* Pairs with smp_mb__before_atomic() in repl_group_behind(). */
	smp_rmb();
	info->behind_reasons = info->state == DM_REPL_STATE_BEHIND ?
			       atomic_read(&g->behind_why) : 0;
	info->flags = 0;
	if (g->role == DM_REPL_ROLE_SECONDARY && READ_ONCE(g->apply.rejoin))
		info->flags |= DM_REPL_GROUPF_REJOIN;
	if (g->role == DM_REPL_ROLE_SECONDARY && READ_ONCE(g->apply.seeded))
		info->flags |= DM_REPL_GROUPF_SEEDED;
	info->gen_current = g->gen_current;
	for (i = 0; i < DM_REPL_META_GEN_HISTORY; i++)
		info->gen_history[i] = g->gen_history[i];
	for (i = 0; i < DM_REPL_MAX_VOLUMES; i++) {
		if (!g->volumes[i])
			continue;
		fill_volume_info(&info->volumes[info->nr_volumes++], g->volumes[i]);
		if (repl_resync_held(g->volumes[i]))
			info->resync_held_volumes |= BIT_ULL(i);
	}
	mutex_unlock(&g->lock);
}

/*
 * A caller of another ABI version gets -EPROTO and, in abi_version (the
 * first field of every info structure), the module's version, so that it
 * can say which side is too old.
 */
static long check_abi_version(void __user *arg)
{
	__u32 version;

	if (get_user(version, (__u32 __user *)arg))
		return -EFAULT;
	if (version == DM_REPL_ABI_VERSION)
		return 0;
	version = DM_REPL_ABI_VERSION;
	return put_user(version, (__u32 __user *)arg) ?: -EPROTO;
}

static void fill_info(struct repl_group *g, void *info, unsigned int cmd)
{
	if (cmd == DM_REPL_IOC_GROUP_INFO) {
		fill_group_info(info, g);
	} else if (cmd == DM_REPL_IOC_VERIFY_INFO) {
		((struct dm_repl_verify_info *)info)->abi_version =
			DM_REPL_ABI_VERSION;
		repl_verify_info(g, info);
	} else {
		((struct dm_repl_apply_info *)info)->abi_version =
			DM_REPL_ABI_VERSION;
		repl_apply_info(g, info);
	}
}

/* DM_REPL_IOC_GROUP_INFO, DM_REPL_IOC_APPLY_INFO, DM_REPL_IOC_VERIFY_INFO. */
static long ioctl_info(struct repl_group *g, void __user *arg,
		       unsigned int cmd)
{
	long r = check_abi_version(arg);
	void *info;

	if (r)
		return r;
	info = kzalloc(_IOC_SIZE(cmd), GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	fill_info(g, info, cmd);
	if (copy_to_user(arg, info, _IOC_SIZE(cmd)))
		r = -EFAULT;
	kfree(info);
	return r;
}

static long ioctl_release(struct repl_group *g, void __user *arg)
{
	u64 seq;
	int r;

	if (g->role != DM_REPL_ROLE_PRIMARY)
		return -EPERM;
	if (get_user(seq, (u64 __user *)arg))
		return -EFAULT;
	r = repl_ring_release(&g->ring, seq);
	if (!r)
		repl_group_released(g);
	return r;
}

/*
 * Copy out as much of the bitmap as fits; buf_size returns its full size.
 * The bits are taken under g->lock (the volume may go), copied to the user
 * without it (the copy may fault and sleep).
 */
static long ioctl_get_bitmap(struct repl_group *g, void __user *arg)
{
	struct dm_repl_bitmap_req req;
	struct repl_volume *v;
	unsigned long *bits = NULL;
	size_t bytes = 0;
	long r = 0;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.abi_version != DM_REPL_ABI_VERSION)
		return -EPROTO;
	if (req.reserved[0] || req.reserved[1] ||
	    req.volume >= DM_REPL_MAX_VOLUMES)
		return -EINVAL;

	/* Longs of a little-endian host read as bytes in little-endian bit order. */
	BUILD_BUG_ON(IS_ENABLED(CONFIG_CPU_BIG_ENDIAN));
	mutex_lock(&g->lock);
	v = g->volumes[req.volume];
	if (v) {
		bytes = BITS_TO_LONGS(v->nr_regions) * sizeof(long);
		bits = kvmalloc(bytes, GFP_KERNEL);
		if (bits)
			memcpy(bits, v->bitmap, bytes);
	}
	mutex_unlock(&g->lock);
	if (!v)
		return -ENOENT;
	if (!bits)
		return -ENOMEM;
	if (copy_to_user(u64_to_user_ptr(req.buf), bits,
			 min_t(u64, bytes, req.buf_size)))
		r = -EFAULT;
	kvfree(bits);
	req.buf_size = bytes;
	if (!r && copy_to_user(arg, &req, sizeof(req)))
		r = -EFAULT;
	return r;
}

static long ioctl_resync(struct repl_group *g, void __user *arg)
{
	struct dm_repl_resync_req req;
	long r;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	r = repl_resync_region(g, &req);
	if (!r && copy_to_user(arg, &req, sizeof(req)))
		r = -EFAULT;
	return r;
}

/* DM_REPL_IOC_ADOPT_GEN (a secondary's). */
static long ioctl_adopt_gen(struct repl_group *g, void __user *arg)
{
	struct dm_repl_gen req;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.abi_version != DM_REPL_ABI_VERSION)
		return -EPROTO;
	if (!req.gen_current || req.reserved0 || req.reserved[0] ||
	    req.reserved[1])
		return -EINVAL;
	return repl_adopt_gen(g, &req);
}

/* DM_REPL_IOC_MARK (a secondary's): it changes state, so a writer's only. */
static long ioctl_mark(struct file *file, struct repl_group *g,
		       void __user *arg)
{
	struct dm_repl_mark_req req;

	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.abi_version != DM_REPL_ABI_VERSION)
		return -EPROTO;
	if (req.reserved[0] || req.reserved[1])
		return -EINVAL;
	return repl_mark(g, &req);
}

static long repl_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct repl_file *rf = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case DM_REPL_IOC_GROUP_INFO:
	case DM_REPL_IOC_APPLY_INFO:
	case DM_REPL_IOC_VERIFY_INFO:
		return ioctl_info(rf->group, uarg, cmd);
	case DM_REPL_IOC_RELEASE:
		return ioctl_release(rf->group, uarg);
	case DM_REPL_IOC_GET_BITMAP:
		return ioctl_get_bitmap(rf->group, uarg);
	case DM_REPL_IOC_RESYNC:
		return ioctl_resync(rf->group, uarg);
	case DM_REPL_IOC_ADOPT_GEN:
		return ioctl_adopt_gen(rf->group, uarg);
	case DM_REPL_IOC_MARK:
		return ioctl_mark(file, rf->group, uarg);
	}
	return -ENOTTY;
}

static const struct file_operations repl_fops = {
	.owner		= THIS_MODULE,
	.open		= repl_open,
	.release	= repl_release,
	.poll		= repl_poll,
	.write		= repl_write,
	.mmap		= repl_mmap,
	.unlocked_ioctl	= repl_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= no_llseek,
};

int repl_chardev_register(struct repl_group *g)
{
	snprintf(g->misc_name, sizeof(g->misc_name), "dm-repl-%s", g->name);
	snprintf(g->nodename, sizeof(g->nodename), "dm-repl/%s", g->name);
	g->misc.minor = MISC_DYNAMIC_MINOR;
	g->misc.name = g->misc_name;
	g->misc.nodename = g->nodename;
	g->misc.mode = 0600;
	g->misc.fops = &repl_fops;
	return misc_register(&g->misc);
}

void repl_chardev_unregister(struct repl_group *g)
{
	misc_deregister(&g->misc);
}

/*
 * rawcap: see rawcap.h. The capset(2) system call itself, with the
 * kernel's <linux/capability.h>: one capability to drop does not call for
 * libcap.
 */
#include "proxy/trace/rawcap.h"

#include <linux/capability.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int
rawcap_drop(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	const unsigned int bit = 1u << (CAP_NET_RAW % 32);
	const int w = CAP_NET_RAW / 32;

	memset(&h, 0, sizeof(h));
	memset(d, 0, sizeof(d));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	h.pid = 0;
	if (syscall(SYS_capget, &h, d) == -1)
		return -1;
	if (((d[w].effective | d[w].permitted | d[w].inheritable) & bit) == 0)
		return 0;
	d[w].effective &= ~bit;
	d[w].permitted &= ~bit;
	d[w].inheritable &= ~bit;
	return syscall(SYS_capset, &h, d) == -1 ? -1 : 0;
}

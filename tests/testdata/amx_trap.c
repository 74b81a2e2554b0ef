/* Makes an AMX CPU behave like the VMs where AMX traps: the kernel
 * appears to grant AMX (arch_prctl says yes) but never does, so the first AMX
 * instruction raises SIGILL, as oneDNN's bfloat16 kernels do there.
 *
 *   gcc -shared -fPIC -o amx_trap.so amx_trap.c -ldl
 *   LD_PRELOAD=$PWD/amx_trap.so python ...
 *
 * It wraps libc's syscall(), through which oneDNN and tvn_tf's probe ask. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/syscall.h>

#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_MASK_XTILE (3UL << 17) /* XTILECFG, XTILEDATA */

long syscall(long number, ...) {
  static long (*real)(long, ...);
  va_list ap;
  long a[6];
  va_start(ap, number);
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  if (number == SYS_arch_prctl && a[0] == ARCH_REQ_XCOMP_PERM) return 0; /* "granted" */
  long status = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (number == SYS_arch_prctl && a[0] == ARCH_GET_XCOMP_PERM && status == 0)
    *(unsigned long *)a[1] |= XFEATURE_MASK_XTILE; /* "permitted" */
  return status;
}

/* Runs one TVM kernel for Hexagon under qemu-hexagon, with no libc and no TVM runtime.
 *
 * case.h (written by tvm_prune.testing.hexagon) defines KERNEL, the kernel's exported symbol,
 * and ARGS, its tensors: data (128-byte aligned), shape and dtype, and whether it is an output.
 * The harness passes them as DLTensor arguments with TVM's packed-call ABI, writes every output's
 * bytes to stdout in order and exits 0; a kernel error goes to stderr with exit code 2.
 *
 * Build: clang-22 --target=hexagon -ffreestanding -fno-builtin -I<tvm_ffi include> -I<case dir>
 *        then ld.lld-22 -m hexagonelf -static -e _start harness.o kernels.o
 */
#include <tvm/ffi/c_api.h>

typedef __SIZE_TYPE__ size_t;

enum { ALIGNMENT = 128 }; /* bytes: one HVX vector */

struct Arg {
  void* data;
  int32_t ndim;
  int64_t* shape;
  uint8_t code, bits;
  uint32_t nbytes;
  int output;
};

#include "case.h"

static long syscall3(long number, long a, long b, long c) {
  register long r0 __asm__("r0") = a;
  register long r1 __asm__("r1") = b;
  register long r2 __asm__("r2") = c;
  register long r6 __asm__("r6") = number;
  __asm__ volatile("trap0(#1)" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r6) : "memory");
  return r0;
}

enum { SYS_WRITE = 64, SYS_EXIT = 93 };

static size_t length(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  return n;
}

static void write_all(int fd, const void* data, size_t n) {
  const char* p = data;
  while (n > 0) {
    long written = syscall3(SYS_WRITE, fd, (long)p, (long)n);
    if (written <= 0) return;
    p += written;
    n -= (size_t)written;
  }
}

static void say(const char* s) { write_all(2, s, length(s)); }

static void leave(int code) {
  syscall3(SYS_EXIT, code, 0, 0);
  for (;;) {
  }
}

/* The compiler may call these for struct copies and zeroing. */
void* memcpy(void* dst, const void* src, size_t n) {
  char* d = dst;
  const char* s = src;
  while (n--) *d++ = *s++;
  return dst;
}

/* Hexagon's variant for copies the compiler knows are aligned and long. */
void* __hexagon_memcpy_likely_aligned_min32bytes_mult8bytes(void* dst, const void* src, size_t n) {
  return memcpy(dst, src, n);
}

void* memset(void* dst, int value, size_t n) {
  char* d = dst;
  while (n--) *d++ = (char)value;
  return dst;
}

/* Integer division helpers the compiler calls (compiler-rt's, which Debian does not ship for
 * Hexagon): shift-and-subtract, so they use no division themselves. */
static uint64_t udivmod64(uint64_t n, uint64_t d, uint64_t* rem) {
  uint64_t q = 0, r = 0;
  for (int i = 63; i >= 0; --i) {
    r = (r << 1) | ((n >> i) & 1);
    if (r >= d) {
      r -= d;
      q |= (uint64_t)1 << i;
    }
  }
  *rem = r;
  return q;
}

static int64_t sdivmod64(int64_t n, int64_t d, int64_t* rem) {
  uint64_t un = n < 0 ? -(uint64_t)n : (uint64_t)n, ud = d < 0 ? -(uint64_t)d : (uint64_t)d, r;
  uint64_t q = udivmod64(un, ud, &r);
  *rem = n < 0 ? -(int64_t)r : (int64_t)r;
  return (n < 0) != (d < 0) ? -(int64_t)q : (int64_t)q;
}

uint64_t __hexagon_udivdi3(uint64_t n, uint64_t d) { uint64_t r; return udivmod64(n, d, &r); }
uint64_t __hexagon_umoddi3(uint64_t n, uint64_t d) { uint64_t r; udivmod64(n, d, &r); return r; }
int64_t __hexagon_divdi3(int64_t n, int64_t d) { int64_t r; return sdivmod64(n, d, &r); }
int64_t __hexagon_moddi3(int64_t n, int64_t d) { int64_t r; sdivmod64(n, d, &r); return r; }
uint32_t __hexagon_udivsi3(uint32_t n, uint32_t d) { return (uint32_t)__hexagon_udivdi3(n, d); }
uint32_t __hexagon_umodsi3(uint32_t n, uint32_t d) { return (uint32_t)__hexagon_umoddi3(n, d); }
int32_t __hexagon_divsi3(int32_t n, int32_t d) { return (int32_t)__hexagon_divdi3(n, d); }
int32_t __hexagon_modsi3(int32_t n, int32_t d) { return (int32_t)__hexagon_moddi3(n, d); }

/* TVM's error hook: the kernel's checks (shape, dtype, device) report through it. */
void TVMFFIErrorSetRaisedFromCStrParts(const char* kind, const char** parts, int32_t num_parts) {
  say(kind);
  say(": ");
  for (int32_t i = 0; i < num_parts; ++i)
    if (parts[i]) say(parts[i]);
  say("\n");
}

/* Function pointers a TVM runtime fills in when it loads a module (weak: a kernel that needs no
 * workspace or threads does not define them). Packed calls are only __tvm_set_device, which has
 * nothing to do on a bare core: a dummy handle and a call that succeeds. Parallel loops run as
 * one task on this thread; workspaces come from a static arena, freed all at once at exit. */
extern void* __TVMFFIHandleInitOnce __attribute__((weak));
extern void* __TVMFFIFunctionCall __attribute__((weak));
extern void* __TVMBackendParallelLaunch __attribute__((weak));
extern void* __TVMBackendAllocWorkspace __attribute__((weak));
extern void* __TVMBackendFreeWorkspace __attribute__((weak));

typedef struct {
  void* sync_handle;
  int32_t num_task;
} ParallelGroupEnv;

static int parallel_launch(int (*lambda)(int, ParallelGroupEnv*, void*), void* closure, int tasks) {
  ParallelGroupEnv env = {0, 1};
  (void)tasks;
  return lambda(0, &env, closure);
}

static unsigned char arena[16 << 20] __attribute__((aligned(ALIGNMENT)));
static size_t arena_used;

static void* alloc_workspace(int device_type, int device_id, uint64_t nbytes, int code, int bits) {
  (void)device_type, (void)device_id, (void)code, (void)bits;
  size_t start = (arena_used + ALIGNMENT - 1) & ~(size_t)(ALIGNMENT - 1);
  if (start + nbytes > sizeof(arena)) return 0;
  arena_used = start + (size_t)nbytes;
  return arena + start;
}

static int free_workspace(int device_type, int device_id, void* ptr) {
  (void)device_type, (void)device_id, (void)ptr;
  return 0;
}

static int handle_init_once(void** handle, int (*init)(void**)) {
  (void)init;
  *handle = (void*)1;
  return 0;
}

static int function_call(void* f, const TVMFFIAny* args, int32_t n, TVMFFIAny* result) {
  (void)f;
  (void)args;
  (void)n;
  (void)result;
  return 0;
}

int KERNEL(void* self, const TVMFFIAny* args, int32_t num_args, TVMFFIAny* result);

void _start(void) {
  enum { N = sizeof(ARGS) / sizeof(ARGS[0]) };
  DLTensor tensors[N];
  TVMFFIAny args[N];
  TVMFFIAny result;
  if (&__TVMFFIHandleInitOnce) __TVMFFIHandleInitOnce = (void*)handle_init_once;
  if (&__TVMFFIFunctionCall) __TVMFFIFunctionCall = (void*)function_call;
  if (&__TVMBackendParallelLaunch) __TVMBackendParallelLaunch = (void*)parallel_launch;
  if (&__TVMBackendAllocWorkspace) __TVMBackendAllocWorkspace = (void*)alloc_workspace;
  if (&__TVMBackendFreeWorkspace) __TVMBackendFreeWorkspace = (void*)free_workspace;
  for (int i = 0; i < N; ++i) {
    memset(&tensors[i], 0, sizeof(DLTensor));
    tensors[i].data = ARGS[i].data;
    tensors[i].device.device_type = kDLHexagon;
    tensors[i].ndim = ARGS[i].ndim;
    tensors[i].dtype.code = ARGS[i].code;
    tensors[i].dtype.bits = ARGS[i].bits;
    tensors[i].dtype.lanes = 1;
    tensors[i].shape = ARGS[i].shape;
    memset(&args[i], 0, sizeof(TVMFFIAny));
    args[i].type_index = kTVMFFIDLTensorPtr;
    args[i].v_ptr = &tensors[i];
  }
  memset(&result, 0, sizeof(result));
  if (KERNEL(0, args, N, &result) != 0) leave(2);
  for (int i = 0; i < N; ++i)
    if (ARGS[i].output) write_all(1, ARGS[i].data, ARGS[i].nbytes);
  leave(0);
}

/*
 * memsim_shim.c -- an LD_PRELOAD library that records every malloc-family call of a process
 * as memsim-trace v1 (see docs/traces.md), with the addresses the real glibc returned.
 *
 * Built and loaded by `memsim record` (src/memsim/trace/record.py); built with the system's C
 * compiler by src/memsim/native/build.py:  cc -O2 -fPIC -shared -o shim.so memsim_shim.c
 *
 * Environment (set by the recorder; without MEMSIM_TRACE_OUT the shim only forwards):
 *   MEMSIM_TRACE_OUT    base path OUT of the trace files
 *   MEMSIM_RECORD_PPID  pid of the recorder: a process whose parent it is, is the "root"
 *
 * One file per process image:
 *   the root's first image ..................... OUT
 *   any other image (fork child, exec'd image) .. OUT.<pid>, or OUT.<pid>.2, OUT.<pid>.3, ...
 *                                                 when that name is taken (a process that
 *                                                 execs after writing its own file)
 * Files are created with O_EXCL, so no image ever overwrites another's.
 *
 * What it must never do: allocate from the heap. Everything lives in static storage; output
 * is formatted by hand into a stack buffer and copied into a shared file mapping; the real
 * allocator is reached through glibc's exported __libc_* entry points (no dlsym, which may
 * itself call calloc).
 *
 * Output path:
 *
 *      a call --> format "m 100 0x5555555592a0 t=4242\n" on the stack
 *             --> memcpy into `window`, a MAP_SHARED mapping of WINDOW_BYTES of the file
 *                 (one fixed address for the life of the image: when it is full, the next
 *                 part of the file is mapped over it with MAP_FIXED, so the shim never moves
 *                 in the address space and does not disturb where the program's own mmaps go)
 *
 * Because the text is in the page cache as soon as it is copied, nothing is lost when the
 * image ends without running destructors: execve(), _exit(), a fatal signal. The file is then
 * a multiple of the window size with a tail of NUL bytes, which the recorder strips. On a
 * normal exit the destructor truncates the file to its exact length, and any call made after
 * that (by destructors that run after ours) is appended with pwrite().
 *
 * Threads: one mutex is held around the real call *and* its line, so that the order of lines
 * is an order the calls really happened in (a free is never written before the malloc that
 * returned its pointer). This serialises the allocator: multi-threaded programs may pick
 * arenas differently under the recorder. Each line carries t=TID.
 *
 * fork (pthread_atfork): the child gets its own file, which starts with the parent's calls so
 * far (copied from the parent's file, marked `# inherited N`), so that every trace is the full
 * history of its address space and can be replayed on its own. posix_spawn/vfork children do
 * not run fork handlers; they exec at once, and the new image starts a new file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

#define WINDOW_BYTES (1UL << 20)   /* bytes of the file mapped at a time: 1 MiB */
#define PAGE_BYTES 4096UL
#define LINE_MAX_BYTES 160         /* a call line is at most ~80 bytes */
#define PATH_BYTES 4096

#define TLS __attribute__((tls_model("initial-exec")))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static TLS __thread int depth;     /* > 0 while this thread is inside the shim */
static TLS __thread pid_t tid;     /* gettid() cache, 0 = unknown */

static int state;                  /* 0 not yet initialised, 1 recording, 2 only forwarding */
static int fd = -1;                /* this image's trace file, -1 before the first call */
static char *window;               /* MAP_SHARED window of the file, fixed address */
static off_t window_off;           /* file offset of window[0] */
static size_t pos;                 /* bytes used in the window */
static int direct;                 /* after the destructor: append with pwrite() */
static off_t header_end;           /* file offset where the call lines start */
static unsigned long calls;        /* call lines written (inherited ones included) */
static unsigned long nested;       /* calls made from inside the shim (must stay 0) */
static uintptr_t brk0;
static const char *out_base;
static char path[PATH_BYTES];

/* --- formatting without printf ---------------------------------------------------------- */

static char *put_str(char *p, const char *s) { while (*s) *p++ = *s++; return p; }

static char *put_dec(char *p, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static char *put_hex(char *p, uintptr_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    int n = 0;
    *p++ = '0'; *p++ = 'x';
    do { tmp[n++] = digits[v & 15]; v >>= 4; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static unsigned long parse_dec(const char *s)
{
    unsigned long v = 0;
    while (s && *s >= '0' && *s <= '9') v = v * 10 + (unsigned long)(*s++ - '0');
    return v;
}

static void say(const char *msg)   /* a diagnostic on stderr, for the user */
{
    char buf[512];
    char *p = put_str(buf, "memsim shim: ");
    p = put_str(p, msg);
    if (path[0]) { p = put_str(p, " ("); p = put_str(p, path); p = put_str(p, ")"); }
    *p++ = '\n';
    ssize_t r = write(2, buf, (size_t)(p - buf));
    (void)r;
}

/* --- the file ---------------------------------------------------------------------------- */

static int map_window(off_t off)
{
    /* Grow the file so the window is backed, then map it (over the old window, if any). */
    if (ftruncate(fd, off + (off_t)WINDOW_BYTES) != 0) return -1;
    void *want = window ? (void *)window : NULL;
    int flags = MAP_SHARED | (window ? MAP_FIXED : 0);
    void *w = mmap(want, WINDOW_BYTES, PROT_READ | PROT_WRITE, flags, fd, off);
    if (w == MAP_FAILED) return -1;
    window = (char *)w;
    window_off = off;
    return 0;
}

static void emit(const char *buf, size_t n)
{
    if (state != 1 || fd < 0) return;
    if (direct) {
        off_t at = window_off + (off_t)pos;
        if (pwrite(fd, buf, n, at) == (ssize_t)n) pos += n;
        return;
    }
    if (pos + n > WINDOW_BYTES) {
        off_t end = window_off + (off_t)pos;
        off_t next = end & ~(off_t)(PAGE_BYTES - 1);
        if (map_window(next) != 0) {
            say("cannot extend the trace file; recording stops here");
            state = 2;
            return;
        }
        pos = (size_t)(end - next);
    }
    memcpy(window + pos, buf, n);
    pos += n;
}


static void emit_meta_num(const char *key, unsigned long v, int hex)
{
    char buf[LINE_MAX_BYTES];
    char *p = put_str(buf, "# ");
    p = put_str(p, key);
    *p++ = ' ';
    p = hex ? put_hex(p, v) : put_dec(p, v);
    *p++ = '\n';
    emit(buf, (size_t)(p - buf));
}

/* shlex.quote-compatible quoting of one argument, into p; control characters become '?' */
static char *put_arg(char *p, char *end, const char *a, size_t len)
{
    int plain = len > 0;
    for (size_t i = 0; i < len && plain; i++) {
        char c = a[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                strchr("@%+=:,./-_", c) != NULL;
    }
    if (plain) {
        for (size_t i = 0; i < len && p < end; i++) *p++ = a[i];
        return p;
    }
    if (p < end) *p++ = '\'';
    for (size_t i = 0; i < len && p + 5 < end; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c == '\'') p = put_str(p, "'\"'\"'");
        else *p++ = (c < 32 || c == 127) ? '?' : (char)c;
    }
    if (p < end) *p++ = '\'';
    return p;
}

static void emit_header(unsigned long parent_pid)
{
    static char buf[PATH_BYTES * 3];
    char *end = buf + sizeof buf - 8;
    char *p = put_str(buf, "# memsim-trace v1\n# brk0 ");
    p = put_hex(p, brk0);
    p = put_str(p, "\n# program ");
    ssize_t n = readlink("/proc/self/exe", p, PATH_BYTES - 1);
    if (n > 0) p += n; else p = put_str(p, "?");
    p = put_str(p, "\n# argv");
    static char cmd[PATH_BYTES * 2];
    int cfd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t len = 0;
    if (cfd >= 0) {
        ssize_t r;
        while (len < (ssize_t)sizeof cmd &&
               (r = read(cfd, cmd + len, sizeof cmd - (size_t)len)) > 0) len += r;
        close(cfd);
    }
    for (ssize_t i = 0; i < len && p < end - 16;) {
        size_t alen = strnlen(cmd + i, (size_t)(len - i));
        *p++ = ' ';
        p = put_arg(p, end - 16, cmd + i, alen);
        i += (ssize_t)alen + 1;
    }
    p = put_str(p, "\n# pid ");
    p = put_dec(p, (unsigned long)getpid());
    p = put_str(p, "\n");
    if (parent_pid) {
        p = put_str(p, "# forked_from ");
        p = put_dec(p, parent_pid);
        p = put_str(p, "\n");
    }
    emit(buf, (size_t)(p - buf));
}

/* Create this image's file under the naming rule above; -1 on failure. */
static int open_trace_file(void)
{
    unsigned long pid = (unsigned long)getpid();
    int root = parse_dec(getenv("MEMSIM_RECORD_PPID")) == (unsigned long)getppid();
    for (int k = root ? 0 : 1; k < 1000; k++) {
        char *p = path;
        size_t blen = strlen(out_base);
        if (blen > PATH_BYTES - 64) return -1;
        memcpy(p, out_base, blen);
        p += blen;
        if (k >= 1) { *p++ = '.'; p = put_dec(p, pid); }
        if (k >= 2) { *p++ = '.'; p = put_dec(p, (unsigned long)k); }
        *p = 0;
        int f = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f >= 0) return f;
        if (errno != EEXIST) break;
    }
    return -1;
}

static int start_file(unsigned long parent_pid)
{
    fd = open_trace_file();
    if (fd < 0) { say("cannot create the trace file; not recording"); state = 2; return -1; }
    if (map_window(0) != 0) {
        say("cannot map the trace file; not recording");
        close(fd); fd = -1; state = 2; return -1;
    }
    pos = 0;
    direct = 0;
    emit_header(parent_pid);
    header_end = window_off + (off_t)pos;
    return 0;
}

static void fork_prepare(void) { pthread_mutex_lock(&lock); }
static void fork_parent(void) { pthread_mutex_unlock(&lock); }

/* In the child: a new file that starts with the parent's calls so far. */
static void fork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&lock, &fresh, sizeof lock);
    tid = 0;
    if (state != 1 || fd < 0) return;
    int parent_fd = fd;
    off_t from = header_end, to = window_off + (off_t)pos;
    unsigned long inherited = calls;
    unsigned long ppid = (unsigned long)getppid();
    char *old_window = window;
    if (start_file(ppid) != 0) { close(parent_fd); return; }
    (void)old_window;   /* start_file() mapped the child's file over the parent's window */
    emit_meta_num("inherited", inherited, 0);
    header_end = window_off + (off_t)pos;
    static char copy[1 << 16];
    while (from < to) {
        size_t want = (size_t)(to - from) < sizeof copy ? (size_t)(to - from) : sizeof copy;
        ssize_t r = pread(parent_fd, copy, want, from);
        if (r <= 0) { say("cannot copy the parent's calls after fork"); break; }
        emit(copy, (size_t)r);
        from += r;
    }
    close(parent_fd);
}

static void init_locked(void)
{
    if (state != 0) return;
    out_base = getenv("MEMSIM_TRACE_OUT");
    if (!out_base || !*out_base) { state = 2; return; }
    state = 1;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* --- one call ------------------------------------------------------------------------------
 *
 * enter() returns 1 when the call is to be recorded, with the lock held. On the first call of
 * the image it creates the file and takes brk0 *before* the call is forwarded.
 *
 * Why this brk0 is the break before any malloc: every malloc-family call of the image comes
 * through these functions (glibc's own internal calls go through the PLT, ld.so's early
 * allocations use its private minimal malloc, which never calls brk), and the first of them
 * reads the break with a raw brk(0) system call before glibc's malloc has run at all. Taking
 * it in a constructor instead would be too late (another library's constructor may malloc
 * before ours runs) and would miss a program that moves the break with sbrk before its first
 * malloc. The raw syscall (rather than sbrk(0)) leaves glibc's own __curbrk untouched, so the
 * recorded program makes exactly the brk calls it makes without the shim.
 */
static int enter(void)
{
    if (depth) { __atomic_fetch_add(&nested, 1, __ATOMIC_RELAXED); return 0; }
    if (state == 2) return 0;
    depth++;
    pthread_mutex_lock(&lock);
    if (state == 0) init_locked();
    if (state == 1 && fd < 0) {
        brk0 = (uintptr_t)syscall(SYS_brk, 0);
        start_file(0);
    }
    if (state != 1) { pthread_mutex_unlock(&lock); depth--; return 0; }
    return 1;
}

static void leave(char *p, char *buf)
{
    if (!tid) tid = (pid_t)syscall(SYS_gettid);
    p = put_str(p, " t=");
    p = put_dec(p, (unsigned long)tid);
    *p++ = '\n';
    emit(buf, (size_t)(p - buf));
    calls++;
    pthread_mutex_unlock(&lock);
    depth--;
}

void *malloc(size_t size)
{
    if (!enter()) return __libc_malloc(size);
    void *r = __libc_malloc(size);
    char buf[LINE_MAX_BYTES], *p = put_str(buf, "m ");
    p = put_dec(p, size); *p++ = ' '; p = put_hex(p, (uintptr_t)r);
    leave(p, buf);
    return r;
}

void free(void *ptr)
{
    if (!enter()) { __libc_free(ptr); return; }
    __libc_free(ptr);
    char buf[LINE_MAX_BYTES], *p = put_str(buf, "f ");
    p = put_hex(p, (uintptr_t)ptr);
    leave(p, buf);
}

void *calloc(size_t nmemb, size_t size)
{
    if (!enter()) return __libc_calloc(nmemb, size);
    void *r = __libc_calloc(nmemb, size);
    char buf[LINE_MAX_BYTES], *p = put_str(buf, "c ");
    p = put_dec(p, nmemb); *p++ = ' '; p = put_dec(p, size); *p++ = ' ';
    p = put_hex(p, (uintptr_t)r);
    leave(p, buf);
    return r;
}

void *realloc(void *old, size_t size)
{
    if (!enter()) return __libc_realloc(old, size);
    void *r = __libc_realloc(old, size);
    char buf[LINE_MAX_BYTES], *p = put_str(buf, "r ");
    p = put_hex(p, (uintptr_t)old); *p++ = ' '; p = put_dec(p, size); *p++ = ' ';
    p = put_hex(p, (uintptr_t)r);
    leave(p, buf);
    return r;
}

void *reallocarray(void *old, size_t nmemb, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes)) { errno = ENOMEM; return NULL; }
    return realloc(old, bytes);
}

static void *aligned(size_t align, size_t size)
{
    if (!enter()) return __libc_memalign(align, size);
    void *r = __libc_memalign(align, size);
    char buf[LINE_MAX_BYTES], *p = put_str(buf, "a ");
    p = put_dec(p, align); *p++ = ' '; p = put_dec(p, size); *p++ = ' ';
    p = put_hex(p, (uintptr_t)r);
    leave(p, buf);
    return r;
}

void *memalign(size_t align, size_t size) { return aligned(align, size); }

/* glibc 2.36 makes aligned_alloc an alias of memalign (no extra checks). */
void *aligned_alloc(size_t align, size_t size) { return aligned(align, size); }

int posix_memalign(void **memptr, size_t align, size_t size)
{
    /* glibc's checks, done before the allocator is reached: an EINVAL call allocates nothing
       and is not recorded. */
    if (align % sizeof(void *) != 0 || align == 0 ||
        ((align / sizeof(void *)) & (align / sizeof(void *) - 1)) != 0)
        return EINVAL;
    void *r = aligned(align, size);
    if (!r) return ENOMEM;
    *memptr = r;
    return 0;
}

void *valloc(size_t size)
{
    if (!enter()) return __libc_valloc(size);
    void *r = __libc_valloc(size);
    char buf[LINE_MAX_BYTES], *p = put_str(buf, "v ");
    p = put_dec(p, size); *p++ = ' '; p = put_hex(p, (uintptr_t)r);
    leave(p, buf);
    return r;
}

void *pvalloc(size_t size)
{
    if (!enter()) return __libc_pvalloc(size);
    void *r = __libc_pvalloc(size);
    char buf[LINE_MAX_BYTES], *p = put_str(buf, "p ");
    p = put_dec(p, size); *p++ = ' '; p = put_hex(p, (uintptr_t)r);
    leave(p, buf);
    return r;
}

/* --- image start and end ----------------------------------------------------------------- */

__attribute__((constructor)) static void shim_init(void)
{
    /* Register the fork handlers early (a program may fork before its first malloc); the
       file itself is created at the first call, see enter(). */
    pthread_mutex_lock(&lock);
    init_locked();
    pthread_mutex_unlock(&lock);
}

__attribute__((destructor)) static void shim_fini(void)
{
    pthread_mutex_lock(&lock);
    if (state == 1 && fd < 0) {          /* an image that made no call: still say so */
        brk0 = (uintptr_t)syscall(SYS_brk, 0);
        start_file(0);
    }
    if (state == 1 && fd >= 0) {
        if (nested) {
            emit_meta_num("nested_calls_not_recorded", nested, 0);
        }
        /* From now on append with pwrite(): destructors that run after ours may still free,
           and a store past the end of a truncated shared mapping would be SIGBUS. */
        direct = 1;
        if (ftruncate(fd, window_off + (off_t)pos) != 0) say("cannot truncate the trace file");
    }
    pthread_mutex_unlock(&lock);
}

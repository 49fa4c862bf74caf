/* kdriver: run a memory-op program against the REAL kernel and report what /proc says.
 *
 * Part of memsim's kernel oracle (memsim.oracle.kernel). Python compiles the op language into
 * a program of integer lines and feeds it on stdin; this driver executes it with raw system
 * calls and prints, on stdout, one result line per op and one status line per snapshot.
 *
 * The measurement must not disturb what it measures, so after the prologue the driver:
 *   - never calls malloc or stdio (glibc's first malloc would grow the heap by 132 KiB);
 *   - issues system calls with inline `syscall` instructions (no errno, no libc wrapper);
 *   - reads /proc/self/status and /proc/self/maps with read(2) into static buffers;
 *   - formats numbers by hand into a static buffer and write(2)s it;
 *   - runs on stack pages and static pages that were all touched before the baseline;
 *   - is linked with -z now (and full RELRO), so no lazy PLT binding writes the GOT later.
 * Everything a page fault, a page-table allocation or a VMA change could come from is thus
 * an op of the program, or the kernel's own deterministic response to it.
 *
 * The prologue (before the first snapshot) makes the address space comparable with the
 * simulator's, which runs the same prologue (memsim.oracle.kernel.SimRunner):
 *   1. every hole between the VMAs of the mmap area (between the lowest VMA above the big
 *      heap/mmap gap and the top mapping) is filled with PROT_NONE|MAP_NORESERVE, so that the
 *      top-down search of a new mapping never lands in a hole left by ld.so;
 *   2. a PROT_EXEC-only "sentinel" VMA fills [align_down(lowest, 1 GiB), lowest): the anchor
 *      (its start) is 1 GiB aligned, nothing a program maps merges with it (--xp), and the
 *      1 GiB below it shares no page table with the libraries;
 *   3. the last byte below the initial break is read, so the PTE table that will hold the
 *      first heap pages exists (as it does in any real program whose .bss was touched);
 *   4. one deliberate SIGSEGV, so the signal path has touched whatever it touches;
 *   5. one-page PROT_NONE mappings at PAD_BASE, two pages apart, bring /proc/self/maps to
 *      MAPS_TARGET lines, so that vm.max_map_count is reached at the same op on both sides.
 *
 * Input lines (integers; an address is a pair BASE OFF with BASE -1 absolute, -2 initial
 * break, -3 anchor, -4 start of the [stack] VMA at the baseline, >= 0 a register):
 *   1 DST LEN PROT FLAGS ABASE AOFF                 mmap (anonymous, fd -1, offset 0)
 *   2 ABASE AOFF LEN                                munmap
 *   3 ABASE AOFF LEN PROT                           mprotect
 *   4 DST ABASE AOFF OLDLEN NEWLEN FLAGS NBASE NOFF mremap
 *   5 ABASE AOFF LEN ADVICE                         madvise
 *   6 ABASE AOFF LEN EVERY                          write (EVERY 0: every byte)
 *   7 ABASE AOFF LEN EVERY                          read
 *   8 DST INC                                       sbrk (glibc semantics over brk(2))
 *   9 RES CURMODE CUR MAXMODE MAX                   setrlimit (mode 0 bytes, 1 relative to
 *                                                   VmData (data) / VmStk (stack) / VmSize (as),
 *                                                   2 inf)
 *  10                                               snapshot
 *  11 DST ABASE AOFF                                raw brk(2)
 * Output lines:
 *   I BRK0 ANCHOR STACK0
 *   R ok VALUE | R err ERRNO | R segv SI_CODE ADDR
 *   S VmSize VmData VmStk RssAnon VmPTE VmRSS VmHWM VmPeak RssFile map_count   (kB; count)
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>

#define PAGE 4096UL
#define GIB (1UL << 30)
#define NREG 4096
#define MAPS_TARGET 64          /* /proc/self/maps lines at the baseline (prologue step 5) */
#define PAD_BASE 0x300000000000UL

static long sc6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define SC(n, a, b, c, d, e, f) sc6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* The buffers live in one anonymous mapping made at start-up, not in .bss: the executable's
 * .bss then stays within its last data page, so the initial break (and the page-table page
 * under the first heap pages) is where the simulator's model of a small C program has it. */
#define INBUF_SZ (4UL << 20)    /* the whole program (pages touched only as far as read) */
#define PBUF_SZ (1UL << 16)     /* /proc reads */
#define OBUF_SZ (1UL << 12)     /* one output line */
#define VMAX 512                /* VMAs parsed in the prologue */
static char *inbuf, *pbuf, *obuf;
static unsigned long *reg, *vs, *ve;
static volatile unsigned long *magic;   /* canary at the end of the work area */
#define MAGIC 0x6b64726976657221UL
static int olen;
static unsigned long brk0, curbrk, anchor, stack0;
static sigjmp_buf segv_env;
static volatile long segv_code, segv_addr;

/* ---- output ------------------------------------------------------------------------------ */
static void flush(void) {
    long off = 0;
    while (off < olen) {
        long w = SC(SYS_write, 1, obuf + off, olen - off, 0, 0, 0);
        if (w <= 0) break;
        off += w;
    }
    olen = 0;
}
static void puts_(const char *s) { while (*s && olen < (int)OBUF_SZ - 1) obuf[olen++] = *s++; }
static void putl(long v) {
    char t[24]; int n = 0; unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
    if (v < 0) obuf[olen++] = '-';
    do { t[n++] = '0' + u % 10; u /= 10; } while (u);
    while (n) obuf[olen++] = t[--n];
}
static void putu(unsigned long u) {
    char t[24]; int n = 0;
    do { t[n++] = '0' + u % 10; u /= 10; } while (u);
    while (n) obuf[olen++] = t[--n];
}

/* ---- /proc ------------------------------------------------------------------------------- */
static long slurp(const char *path) {
    long fd = SC(SYS_open, path, 0, 0, 0, 0, 0), n = 0, r;
    if (fd < 0) return -1;
    while ((r = SC(SYS_read, fd, pbuf + n, PBUF_SZ - 1 - n, 0, 0, 0)) > 0) n += r;
    SC(SYS_close, fd, 0, 0, 0, 0, 0);
    pbuf[n] = 0;
    return n;
}
static long field(const char *key) {      /* from pbuf holding /proc/self/status */
    for (char *p = pbuf; *p; ) {
        const char *k = key; char *q = p;
        while (*k && *q == *k) { k++; q++; }
        if (!*k && *q == ':') {
            q++;
            while (*q == ' ' || *q == '\t') q++;
            long v = 0;
            while (*q >= '0' && *q <= '9') v = v * 10 + (*q++ - '0');
            return v;
        }
        while (*p && *p != '\n') p++;
        if (*p) p++;
    }
    return -1;
}
static long map_count(void) {
    long fd = SC(SYS_open, "/proc/self/maps", 0, 0, 0, 0, 0), r, c = 0;
    if (fd < 0) return -1;
    while ((r = SC(SYS_read, fd, pbuf, PBUF_SZ, 0, 0, 0)) > 0)
        for (long i = 0; i < r; i++) c += pbuf[i] == '\n';
    SC(SYS_close, fd, 0, 0, 0, 0, 0);
    return c;
}
static void snapshot(void) {
    static const char *keys[] = {"VmSize", "VmData", "VmStk", "RssAnon", "VmPTE", "VmRSS",
                                 "VmHWM", "VmPeak", "RssFile"};
    long v[9];
    slurp("/proc/self/status");
    for (int i = 0; i < 9; i++) v[i] = field(keys[i]);
    long mc = map_count();
    puts_("S");
    for (int i = 0; i < 9; i++) { puts_(" "); putl(v[i]); }
    puts_(" "); putl(mc); puts_("\n");
    flush();
}

/* ---- input ------------------------------------------------------------------------------- */
static char *ip;
static long num(void) {
    while (*ip == ' ' || *ip == '\t') ip++;
    int neg = 0; long v = 0;
    if (*ip == '-') { neg = 1; ip++; }
    while (*ip >= '0' && *ip <= '9') v = v * 10 + (*ip++ - '0');
    return neg ? -v : v;
}
static unsigned long addr(void) {
    long base = num(), off = num();
    unsigned long b = base == -1 ? 0 : base == -2 ? brk0 : base == -3 ? anchor
                    : base == -4 ? stack0
                    : (base >= 0 && base < NREG) ? reg[base] : 0;
    return b + (unsigned long)off;
}
static void setreg(long dst, unsigned long v) { if (dst >= 0 && dst < NREG) reg[dst] = v; }

static void result(long ret) {            /* raw syscall return: -4095..-1 is -errno */
    if (ret < 0 && ret >= -4095) { puts_("R err "); putl(-ret); }
    else { puts_("R ok "); putu((unsigned long)ret); }
    puts_("\n");
    flush();
}

/* ---- faults ------------------------------------------------------------------------------ */
static volatile int in_touch;          /* 1 while a program's read/write runs */
static void die(const char *msg, int status) {
    long n = 0;
    while (msg[n]) n++;
    SC(SYS_write, 2, msg, n, 0, 0, 0);
    SC(SYS_exit_group, status, 0, 0, 0, 0, 0);
}
static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    if (!in_touch)                       /* the program unmapped or replaced driver memory */
        die("kdriver: SIGSEGV in the driver itself\n", 5);
    segv_code = si->si_code;
    segv_addr = (long)si->si_addr;
    siglongjmp(segv_env, 1);
}
/* Touch the bytes a, a+every, ... below a+len (every 0 = all bytes). One access per page is
 * what the kernel sees, so for a dense range the first touched byte of each page is used. */
static void touch(unsigned long a, long len, long every, int write) {
    if (len <= 0) { result(0); return; }
    if (sigsetjmp(segv_env, 1)) {
        in_touch = 0;
        puts_("R segv "); putl(segv_code); puts_(" "); putu((unsigned long)segv_addr); puts_("\n");
        flush();
        return;
    }
    in_touch = 1;
    unsigned long end = a + (unsigned long)len;
    if (every <= 0) every = 1;
    if ((unsigned long)every >= PAGE) {
        for (unsigned long p = a; p < end && p >= a; p += every) {
            if (write) *(volatile char *)p = 1; else (void)*(volatile char *)p;
        }
    } else {
        unsigned long last = a + ((unsigned long)(len - 1) / every) * every;
        for (unsigned long pg = a & ~(PAGE - 1); pg <= (last & ~(PAGE - 1)); pg += PAGE) {
            unsigned long p = pg < a ? a : pg;
            unsigned long k = (p - a + every - 1) / every;      /* first touched byte >= p */
            p = a + k * every;
            if (write) *(volatile char *)p = 1; else (void)*(volatile char *)p;
        }
    }
    in_touch = 0;
    result(0);
}

/* ---- glibc sbrk over brk(2) --------------------------------------------------------------- */
static void do_sbrk(long dst, long inc) {
    unsigned long old = curbrk;
    if (inc == 0) { setreg(dst, old); result((long)old); return; }
    if (inc > 0 ? old + (unsigned long)inc < old : old < (unsigned long)-inc) { result(-12); return; }
    unsigned long want = old + (unsigned long)inc;
    unsigned long got = (unsigned long)SC(SYS_brk, want, 0, 0, 0, 0, 0);
    curbrk = got;                                 /* glibc __brk stores what the kernel said */
    if (got < want) { result(-12); return; }      /* ENOMEM */
    setreg(dst, old);
    result((long)old);
}

/* ---- prologue ---------------------------------------------------------------------------- */
static unsigned long hex(char **pp) {
    unsigned long v = 0; char *p = *pp;
    for (;; p++) {
        char c = *p;
        if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (c - 'a' + 10);
        else break;
    }
    *pp = p;
    return v;
}
static __attribute__((noinline)) void pretouch_stack(void) {
    volatile char big[96 * 1024];
    for (unsigned long i = 0; i < sizeof big; i += 512) big[i] = 0;
}
static void prologue(void) {
    /* 1-2: fill the holes of the mmap area and place the sentinel */
    slurp("/proc/self/maps");
    int n = 0;
    for (char *p = pbuf; *p && n < VMAX; ) {
        unsigned long s = hex(&p); p++; unsigned long e = hex(&p);
        if (s < (1UL << 47)) { vs[n] = s; ve[n] = e; n++; }
        while (*p && *p != '\n') p++;
        if (*p) p++;
    }
    /* the mmap area: VMAs above the largest gap, except the last one (the stack) */
    int lo = 0; unsigned long gap = 0;
    for (int i = 1; i < n - 1; i++)
        if (vs[i] - ve[i - 1] > gap) { gap = vs[i] - ve[i - 1]; lo = i; }
    for (int i = lo + 1; i < n - 1; i++)
        if (vs[i] > ve[i - 1])
            SC(SYS_mmap, ve[i - 1], vs[i] - ve[i - 1], 0, 0x22 | 0x4000 | 0x100000, -1, 0);
    unsigned long lowest = vs[lo];
    anchor = (lowest - PAGE) & ~(GIB - 1);
    SC(SYS_mmap, anchor, lowest - anchor, 4, 0x22 | 0x4000 | 0x100000, -1, 0);
    /* 3: the page table under the first heap page */
    brk0 = curbrk = (unsigned long)SC(SYS_brk, 0, 0, 0, 0, 0, 0);
    (void)*(volatile char *)(brk0 - 1);
    /* 4: the signal path */
    struct sigaction sa;
    for (unsigned long i = 0; i < sizeof sa; i++) ((char *)&sa)[i] = 0;
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    pretouch_stack();
    for (unsigned long i = 0; i < PBUF_SZ + OBUF_SZ + NREG * 8 + 2 * VMAX * 8; i += PAGE)
        pbuf[i] = 0;                     /* every buffer page but the program's */
    volatile char *volatile bad = (volatile char *)16;
    in_touch = 1;
    if (!sigsetjmp(segv_env, 1)) (void)*bad;
    in_touch = 0;
    /* 5: pad the VMA count to MAPS_TARGET lines, so vm.max_map_count is reached at the same
     * op on both sides (one-page PROT_NONE mappings, two pages apart, far from everything) */
    for (long i = 0, c = map_count(); c >= 0 && c < MAPS_TARGET; i++, c++)
        SC(SYS_mmap, PAD_BASE + 2 * PAGE * i, PAGE, 0, 0x22 | 0x4000 | 0x100000, -1, 0);
    slurp("/proc/self/maps");     /* the stack VMA as it is now (pretouch may have grown it) */
    for (char *p = pbuf; *p; ) {
        char *line = p; unsigned long s = hex(&p);
        while (*p && *p != '\n') p++;
        if (p - line > 7 && p[-1] == ']' && p[-7] == '[' && p[-6] == 's' && p[-5] == 't') stack0 = s;
        if (*p) p++;
    }
    slurp("/proc/self/status");
    map_count();
    *magic = MAGIC;                      /* after the VMA table (ve) was last written */
}

int main(void) {
    long n = 0, r;
    unsigned long total = INBUF_SZ + PBUF_SZ + OBUF_SZ + NREG * 8 + 2 * VMAX * 8;
    char *area = (char *)SC(SYS_mmap, 0, total, 3, 0x22 | 0x4000, -1, 0);
    if ((long)area < 0) return 2;
    inbuf = area; pbuf = inbuf + INBUF_SZ; obuf = pbuf + PBUF_SZ;
    reg = (unsigned long *)(obuf + OBUF_SZ); vs = reg + NREG; ve = vs + VMAX;
    magic = ve + VMAX - 1;
    while ((r = SC(SYS_read, 0, inbuf + n, INBUF_SZ - 1 - n, 0, 0, 0)) > 0) n += r;
    if (n >= (long)INBUF_SZ - 1) return 3;          /* program too large */
    inbuf[n] = 0;
    prologue();
    puts_("I "); putu(brk0); puts_(" "); putu(anchor);
    puts_(" "); putu(stack0); puts_("\n");
    flush();
    snapshot();
    for (ip = inbuf; *ip; ) {
        long op = num();
        switch (op) {
        case 1: {
            long dst = num(), len = num(), prot = num(), flags = num();
            unsigned long a = addr();
            long ret = SC(SYS_mmap, a, len, prot, flags, -1, 0);
            if (!(ret < 0 && ret >= -4095)) setreg(dst, (unsigned long)ret);
            result(ret);
            break;
        }
        case 2: { unsigned long a = addr(); long len = num(); result(SC(SYS_munmap, a, len, 0, 0, 0, 0)); break; }
        case 3: {
            unsigned long a = addr(); long len = num(), prot = num();
            result(SC(SYS_mprotect, a, len, prot, 0, 0, 0));
            break;
        }
        case 4: {
            long dst = num(); unsigned long a = addr(); long ol = num(), nl = num(), fl = num();
            unsigned long na = addr();
            long ret = SC(SYS_mremap, a, ol, nl, fl, na, 0);
            if (!(ret < 0 && ret >= -4095)) setreg(dst, (unsigned long)ret);
            result(ret);
            break;
        }
        case 5: {
            unsigned long a = addr(); long len = num(), adv = num();
            result(SC(SYS_madvise, a, len, adv, 0, 0, 0));
            break;
        }
        case 6: case 7: {
            unsigned long a = addr(); long len = num(), every = num();
            touch(a, len, every, op == 6);
            break;
        }
        case 8: { long dst = num(), inc = num(); do_sbrk(dst, inc); break; }
        case 9: {
            long res = num(), cm = num(), cur = num(), mm = num(), max = num();
            slurp("/proc/self/status");
            long base = (res == 2 /* RLIMIT_DATA */ ? field("VmData")
                         : res == 3 /* RLIMIT_STACK */ ? field("VmStk") : field("VmSize")) * 1024;
            unsigned long rl[2];
            rl[0] = cm == 2 ? ~0UL : cm == 1 ? (unsigned long)(base + cur) : (unsigned long)cur;
            rl[1] = mm == 2 ? ~0UL : mm == 1 ? (unsigned long)(base + max) : (unsigned long)max;
            result(SC(SYS_prlimit64, 0, res, rl, 0, 0, 0));
            break;
        }
        case 10: snapshot(); break;
        case 11: {
            long dst = num(); unsigned long a = addr();
            unsigned long got = (unsigned long)SC(SYS_brk, a, 0, 0, 0, 0, 0);
            setreg(dst, got);
            curbrk = got;
            result((long)got);
            break;
        }
        default: break;
        }
        if (*magic != MAGIC)                 /* the work area was replaced (MAP_FIXED) */
            die("kdriver: the program replaced the driver's own memory\n", 4);
        while (*ip && *ip != '\n') ip++;
        if (*ip) ip++;
    }
    return 0;
}

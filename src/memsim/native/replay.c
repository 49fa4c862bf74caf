/*
 * replay.c - replay a memsim-trace v1 through this machine's real glibc malloc, timed.
 *
 * The physical limit for a trace replay: the same calls memsim's allocator models make,
 * made by the real allocator, with as little else as possible around them. Used by
 * benchmarks/bench_replay.py next to the Python model; built by memsim.native.build.
 *
 *   usage: replay [-t] TRACE          (TRACE: plain text; decompress first)
 *          -t  write every byte of each new block (memset), as a program that touches
 *              what it allocates (memsim replay's default)
 *
 * How it works:
 *
 *   1. mmap the file; parse the header ("# memsim-trace v1", "# brk0 0x...") and every
 *      call line into an array of fixed records (op, a, b, ret), in an anonymous mapping,
 *      while counting the largest number of objects live at once.
 *   2. size an open-addressing hash table (linear probing, power-of-two capacity at least
 *      twice the peak live count, also an anonymous mapping) that maps each recorded
 *      pointer to the pointer glibc returns here: object identity, as in the Python replay.
 *      Removal uses backward-shift deletion, so there are no tombstones.
 *   3. read the break (sbrk(0): this program has made no malloc call yet, so its heap starts
 *      there exactly as the recorded program's did at brk0), then replay the records
 *      between two clock_gettime(CLOCK_MONOTONIC) calls, and nothing else: parsing is
 *      outside the timed part.
 *   4. print one line of key=value pairs: calls, parse_s, replay_s, events_per_s (wall
 *      clock), cpu_s and cpu_events_per_s (this process's CPU time: steadier on a loaded
 *      machine), and
 *      heap_same / heap_compared: how many returned heap pointers had the same offset from
 *      the initial break as in the recording (a cross-check of the recording itself).
 *
 * Nothing here calls malloc before the replay (no stdio: open/read/mmap/write only), so
 * the heap the replay sees is as fresh as the recorded program's.
 *
 *      record:  | op | a | b | ret |     op: 'm' 'c' 'r' 'f' 'a' 'v' 'p'
 *      table:   [ key = recorded ptr | val = live ptr ] x 2^k, key 0 = empty slot
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct call {
    uint64_t op;
    uint64_t a, b, ret;
};

struct slot {
    uint64_t key;   /* recorded pointer, 0 = empty */
    uint64_t val;   /* live pointer here */
};

static struct slot *table;
static uint64_t mask;
static int shift;

static void die(const char *msg, long lineno)
{
    char buf[512];
    int n;
    if (lineno > 0)
        n = snprintf(buf, sizeof buf, "replay: line %ld: %s\n", lineno, msg);
    else
        n = snprintf(buf, sizeof buf, "replay: %s\n", msg);
    if (write(2, buf, (size_t)n) < 0)
        _exit(3);
    _exit(2);
}

static void *anon(size_t bytes)
{
    void *p = mmap(NULL, bytes ? bytes : 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("cannot map memory for the records", 0);
    return p;
}

static inline uint64_t slot_of(uint64_t key)
{
    return ((key >> 4) * 0x9E3779B97F4A7C15ull) >> shift;
}

static inline void put(uint64_t key, uint64_t val)
{
    uint64_t i = slot_of(key);
    while (table[i].key && table[i].key != key)
        i = (i + 1) & mask;
    table[i].key = key;
    table[i].val = val;
}

/* Remove key; returns its value, or sets *found = 0. Backward-shift deletion. */
static inline uint64_t take(uint64_t key, int *found)
{
    uint64_t i = slot_of(key);
    while (table[i].key != key) {
        if (!table[i].key) {
            *found = 0;
            return 0;
        }
        i = (i + 1) & mask;
    }
    uint64_t val = table[i].val;
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!table[j].key)
            break;
        uint64_t home = slot_of(table[j].key);
        /* can table[j] move to the hole at i? (its home is not in (i, j]) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            table[i] = table[j];
            i = j;
        }
    }
    table[i].key = 0;
    *found = 1;
    return val;
}

/* --- parsing ------------------------------------------------------------------------ */

static const char *pos, *end;
static long lineno;

static uint64_t number(int hex)
{
    while (pos < end && *pos == ' ')
        pos++;
    uint64_t v = 0;
    const char *start = pos;
    if (hex) {
        if (end - pos < 3 || pos[0] != '0' || (pos[1] != 'x' && pos[1] != 'X'))
            die("a pointer must be hexadecimal with 0x", lineno);
        pos += 2;
        start = pos;
        for (; pos < end; pos++) {
            char c = *pos;
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                break;
            v = v * 16 + d;
        }
    } else {
        for (; pos < end && *pos >= '0' && *pos <= '9'; pos++)
            v = v * 10 + (uint64_t)(*pos - '0');
    }
    if (pos == start)
        die("a number is missing", lineno);
    return v;
}

static void skip_line(void)
{
    const char *nl = memchr(pos, '\n', (size_t)(end - pos));
    pos = nl ? nl + 1 : end;
}

int main(int argc, char **argv)
{
    int touch = 0;
    int argi = 1;
    if (argi < argc && strcmp(argv[argi], "-t") == 0) {
        touch = 1;
        argi++;
    }
    if (argi + 1 != argc)
        die("usage: replay [-t] TRACE (plain memsim-trace v1)", 0);
    int fd = open(argv[argi], O_RDONLY);
    if (fd < 0)
        die("cannot open the trace", 0);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size == 0)
        die("empty or unreadable trace", 0);
    const char *text = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (text == MAP_FAILED)
        die("cannot map the trace", 0);
    close(fd);

    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pos = text;
    end = text + st.st_size;
    static const char magic[] = "# memsim-trace v1";
    if ((size_t)st.st_size < sizeof magic - 1 || memcmp(text, magic, sizeof magic - 1) != 0)
        die("not a memsim-trace v1 trace (plain text; decompress it first)", 1);

    /* upper bound of the number of calls: the number of lines */
    size_t lines = 1;
    for (const char *q = text; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
        lines++;
    struct call *calls = anon(lines * sizeof(struct call));
    size_t n = 0;
    uint64_t brk0 = 0;
    long live = 0, peak = 0;
    lineno = 0;
    while (pos < end) {
        lineno++;
        char c = *pos;
        if (c == '#') {
            if (end - pos > 7 && memcmp(pos, "# brk0 ", 7) == 0) {
                pos += 7;
                brk0 = number(1);
            }
            skip_line();
            continue;
        }
        if (c == '\n' || c == '\r') {
            skip_line();
            continue;
        }
        if (end - pos < 2 || pos[1] != ' ')
            die("malformed line", lineno);
        pos += 1;
        struct call *k = &calls[n++];
        k->op = (uint64_t)c;
        k->a = k->b = k->ret = 0;
        switch (c) {
        case 'm': case 'v': case 'p':
            k->a = number(0);
            k->ret = number(1);
            if (k->ret)
                live++;
            break;
        case 'c': case 'a':
            k->a = number(0);
            k->b = number(0);
            k->ret = number(1);
            if (k->ret)
                live++;
            break;
        case 'r':
            k->a = number(1);
            k->b = number(0);
            k->ret = number(1);
            if (!k->a && k->ret)
                live++;
            else if (k->a && k->b == 0)
                live--;
            break;
        case 'f':
            k->a = number(1);
            if (k->a)
                live--;
            break;
        default:
            die("unknown operation", lineno);
        }
        if (live > peak)
            peak = live;
        skip_line();                       /* the rest: t=... and other key=value fields */
    }
    uint64_t cap = 1024;
    shift = 64 - 10;
    while (cap < 2 * (uint64_t)peak + 16) {
        cap <<= 1;
        shift--;
    }
    mask = cap - 1;
    table = anon(cap * sizeof(struct slot));
    clock_gettime(CLOCK_MONOTONIC, &t1);

    /* --- the timed replay ----------------------------------------------------------- */
    struct timespec c1, c2;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    uint64_t base = (uint64_t)(uintptr_t)sbrk(0);
    uint64_t same = 0, compared = 0;
    int found;
    for (size_t i = 0; i < n; i++) {
        struct call *k = &calls[i];
        uint64_t p = 0, size = 0;
        switch (k->op) {
        case 'f':
            if (k->a) {
                p = take(k->a, &found);
                if (!found)
                    die("free of an address that is not live", -1);
                free((void *)(uintptr_t)p);
            }
            continue;
        case 'm':
            size = k->a;
            p = (uint64_t)(uintptr_t)malloc(size);
            break;
        case 'c':
            size = k->a * k->b;
            p = (uint64_t)(uintptr_t)calloc(k->a, k->b);
            break;
        case 'a':
            size = k->b;
            p = (uint64_t)(uintptr_t)memalign(k->a, k->b);
            break;
        case 'v':
            size = k->a;
            p = (uint64_t)(uintptr_t)valloc(size);
            break;
        case 'p':
            size = k->a;
            p = (uint64_t)(uintptr_t)pvalloc(size);
            break;
        case 'r': {
            uint64_t old = 0;
            if (k->a) {
                old = take(k->a, &found);
                if (!found)
                    die("realloc of an address that is not live", -1);
            }
            size = k->b;
            p = (uint64_t)(uintptr_t)realloc((void *)(uintptr_t)old, size);
            if (k->a && size == 0)
                continue;                              /* freed */
            if (!k->ret) {                             /* failed when recorded */
                if (k->a)
                    put(k->a, p ? p : old);
                continue;
            }
            if (!p)
                p = old;
            break;
        }
        }
        if (k->ret) {
            put(k->ret, p);
            if (k->ret >= brk0 && k->ret - brk0 < (1ull << 32)) {
                compared++;
                same += (p - base == k->ret - brk0);
            }
        }
        if (touch && p && size)
            memset((void *)(uintptr_t)p, 0xa5, size);
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c2);

    double parse_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    double replay_s = (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) * 1e-9;
    double cpu_s = (double)(c2.tv_sec - c1.tv_sec) + (double)(c2.tv_nsec - c1.tv_nsec) * 1e-9;
    char out[512];
    int len = snprintf(out, sizeof out,
                       "calls=%zu parse_s=%.6f replay_s=%.6f events_per_s=%.1f cpu_s=%.6f "
                       "cpu_events_per_s=%.1f peak_live=%ld heap_same=%llu heap_compared=%llu "
                       "touch=%d\n",
                       n, parse_s, replay_s, replay_s > 0 ? (double)n / replay_s : 0.0, cpu_s,
                       cpu_s > 0 ? (double)n / cpu_s : 0.0, peak,
                       (unsigned long long)same, (unsigned long long)compared, touch);
    if (write(1, out, (size_t)len) < 0)
        return 3;
    return 0;
}

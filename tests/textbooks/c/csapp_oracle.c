/*
 * csapp_oracle.c - run the CS:APP book's mm.c (not shipped: MEMSIM_CSAPP_MM_C names it) on a
 * Malloc Lab .rep trace and print "peak_payload heap_size" as mdriver's eval_mm_util counts
 * them. Written for memsim's tests: a memlib model (a MAX_HEAP arena, mem_sbrk moves a break
 * forward, fails past the end) and the payload bookkeeping of eval_mm_util. Build:
 *     gcc -O1 -DDRIVER [-DNEXT_FIT] -o oracle csapp_oracle.c mm.c
 * with the book's mm.c (its find_fit takes NEXT_FIT from -D when its own #define is off).
 */
#include <stdio.h>
#include <stdlib.h>

#define MAX_HEAP (20 * (1 << 20))

int mm_init(void);
void *mm_malloc(size_t size);
void mm_free(void *ptr);
void *mm_realloc(void *ptr, size_t size);

static char *heap_start, *heap_brk, *heap_max;

void *mem_sbrk(int incr) {
    char *old = heap_brk;
    if (incr < 0 || heap_brk + incr > heap_max)
        return (void *)-1;
    heap_brk += incr;
    return old;
}
void *mem_heap_lo(void) { return heap_start; }
void *mem_heap_hi(void) { return heap_brk - 1; }
size_t mem_heapsize(void) { return (size_t)(heap_brk - heap_start); }
size_t mem_pagesize(void) { return 4096; }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s TRACE.rep\n", argv[0]);
        return 2;
    }
    heap_start = heap_brk = aligned_alloc(4096, MAX_HEAP);
    heap_max = heap_start + MAX_HEAP;
    FILE *f = fopen(argv[1], "r");
    int head[4];
    if (!f)
        return 2;
    /* four header numbers, or two (num_ids, num_ops) in some course copies */
    int n = fscanf(f, "%d %d %d %d", &head[0], &head[1], &head[2], &head[3]);
    if (n != 4 && n != 2)
        return 2;
    int ids = n == 4 ? head[1] : head[0];
    char **blocks = calloc((size_t)ids + 1, sizeof(char *));
    long *sizes = calloc((size_t)ids + 1, sizeof(long));
    if (mm_init() < 0)
        return 3;
    long total = 0, peak = 0;
    char kind[16];
    unsigned id, size;
    while (fscanf(f, "%15s", kind) == 1) {
        if (kind[0] == 'a' || kind[0] == 'r') {
            if (fscanf(f, "%u %u", &id, &size) != 2)
                return 2;
            blocks[id] = kind[0] == 'a' ? mm_malloc(size) : mm_realloc(blocks[id], size);
            if (!blocks[id]) {
                printf("FAIL %u\n", id);
                return 1;
            }
            total += (long)size - (kind[0] == 'a' ? 0 : sizes[id]);
            sizes[id] = size;
            if (total > peak)
                peak = total;
        } else {
            if (fscanf(f, "%u", &id) != 1)
                return 2;
            mm_free(blocks[id]);
            total -= sizes[id];
        }
    }
    printf("%ld %ld\n", peak, (long)mem_heapsize());
    return 0;
}

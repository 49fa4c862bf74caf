/* Replay a malloc call script through the real glibc and print each result.
 *
 * Usage: replay SCRIPT.   One op per line (slots index a static pointer table):
 *   m S N      p[S] = malloc(N)            f S        free(p[S])
 *   F S        free(p[S]), keeps p[S]      P S OFF    free(p[S] + OFF)  (misuse tests)
 *   c S N M    p[S] = calloc(N, M)         r S N      p[S] = realloc(p[S], N)
 *   a S AL N   p[S] = memalign(AL, N)      A S AL N   p[S] = aligned_alloc(AL, N)
 *   p S AL N   posix_memalign(&p[S],AL,N)  v S N      p[S] = valloc(N)
 *   V S N      p[S] = pvalloc(N)           u S        malloc_usable_size(p[S])
 *   t PAD      malloc_trim(PAD)            o P V      mallopt(P, V)
 *   i          mallinfo2()                 s N        sbrk(N)  (a foreign sbrk)
 *   x OFF      mmap one PROT_NONE page at base+OFF (MAP_FIXED_NOREPLACE): blocks brk
 *   R          resident size of [heap] in KiB, from /proc/self/smaps
 * Output, one line per op: "H off" (pointer as offset from the initial break), "M pgoff
 * usable" (an mmapped chunk), "0" (NULL), "-" (free), "U n", "T r", "O r", "E err", "S off",
 * "F n off" (a chunk outside the brk heap: in the n-th mmap-as-morecore region seen, whose
 * base is the page of the first pointer returned in it and whose length is what the arena
 * grew by in that call),
 * "I arena ordblks smblks hblks hblkhd fsmblks uordblks fordblks keepcost".
 * The first line is "P base" (the initial break). No stdio: it would malloc. getppid() marks the start of the replay for strace.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSLOTS 65536
static void *slot[NSLOTS];
static char *base, *fbase[256];
static size_t flen[256], arena_before;
static int nf, blocked;
static char script[1 << 24];
static char out[1 << 16];
static size_t outn;

static void flush(void) { if (outn) { write(1, out, outn); outn = 0; } }
static void put(const char *s) { size_t n = strlen(s); if (outn + n > sizeof out) flush(); memcpy(out + outn, s, n); outn += n; }
static void puthex(unsigned long v) { char b[24]; int i = 23; b[i] = 0; do { b[--i] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v); put(b + i); }
static void putdec(unsigned long v) { char b[24]; int i = 23; b[i] = 0; do { b[--i] = '0' + v % 10; v /= 10; } while (v); put(b + i); }
static void putsigned(long v) { if (v < 0) { put("-"); putdec((unsigned long)-v); } else putdec((unsigned long)v); }

static void ptr(void *q) {
  if (!q) { put("0\n"); return; }
  size_t hdr = ((size_t *)q)[-1];
  if (hdr & 2) { put("M "); puthex((unsigned long)q & 4095); put(" "); putdec(malloc_usable_size(q)); put("\n"); }
  else if ((char *)q >= base && (char *)q < base + (1L << 32)) { put("H "); puthex((unsigned long)((char *)q - base)); put("\n"); }
  else {  /* a heap in mmap-as-morecore space: region number and offset in the region */
    int best = -1;
    for (int i = 0; i < nf; i++)
      if (fbase[i] <= (char *)q && (char *)q < fbase[i] + flen[i]) best = i;
    if (best < 0 && nf < 256) {   /* a new region: as long as the arena just grew */
      fbase[nf] = (char *)(((unsigned long)q - 16) & ~4095UL);
      size_t grown = mallinfo2().arena - arena_before;
      flen[nf] = grown ? grown : (1 << 20);
      best = nf++;
    }
    put("F "); putdec((unsigned long)best); put(" "); puthex((unsigned long)((char *)q - fbase[best])); put("\n");
  }
}

static char smaps[1 << 20];
static unsigned long heap_rss_kb(void) {
  int fd = open("/proc/self/smaps", O_RDONLY);
  size_t n = 0; ssize_t r;
  while ((r = read(fd, smaps + n, sizeof smaps - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  smaps[n] = 0;
  char *h = strstr(smaps, "[heap]");
  if (!h) return 0;
  char *rss = strstr(h, "\nRss:");
  if (!rss) return 0;
  rss += 5;
  while (*rss == ' ') rss++;
  unsigned long v = 0;
  while (*rss >= '0' && *rss <= '9') v = v * 10 + (unsigned long)(*rss++ - '0');
  return v;
}

static char *cur;
static long num(void) {
  while (*cur == ' ') cur++;
  int neg = 0; if (*cur == '-') { neg = 1; cur++; }
  unsigned long v = 0;
  while (*cur >= '0' && *cur <= '9') v = v * 10 + (unsigned long)(*cur++ - '0');
  return neg ? -(long)v : (long)v;
}

int main(int argc, char **argv) {
  base = sbrk(0);
  if (argc < 2) return 2;
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) return 2;
  size_t n = 0; ssize_t r;
  while ((r = read(fd, script + n, sizeof script - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  script[n] = 0;
  put("P "); puthex((unsigned long)base); put("\n"); flush();
  getppid();
  cur = script;
  while (*cur) {
    char op = *cur++;
    long s, a, b;
    if (blocked) arena_before = mallinfo2().arena;
    switch (op) {
    case 'm': s = num(); slot[s] = malloc((size_t)num()); ptr(slot[s]); break;
    case 'f': s = num(); free(slot[s]); slot[s] = 0; put("-\n"); break;
    case 'F': s = num(); free(slot[s]); put("-\n"); break;
    case 'P': s = num(); a = num(); free((char *)slot[s] + a); put("-\n"); break;
    case 'c': s = num(); a = num(); b = num(); slot[s] = calloc((size_t)a, (size_t)b); ptr(slot[s]); break;
    case 'r': { s = num(); a = num(); void *q = realloc(slot[s], (size_t)a); if (q || a == 0) slot[s] = q; ptr(q); break; }
    case 'a': s = num(); a = num(); slot[s] = memalign((size_t)a, (size_t)num()); ptr(slot[s]); break;
    case 'A': s = num(); a = num(); slot[s] = aligned_alloc((size_t)a, (size_t)num()); ptr(slot[s]); break;
    case 'p': { s = num(); a = num(); b = num(); void *q = 0; int e = posix_memalign(&q, (size_t)a, (size_t)b);
                if (e) { put("E "); putdec((unsigned long)e); put("\n"); } else { slot[s] = q; ptr(q); } break; }
    case 'v': s = num(); slot[s] = valloc((size_t)num()); ptr(slot[s]); break;
    case 'V': s = num(); slot[s] = pvalloc((size_t)num()); ptr(slot[s]); break;
    case 'u': s = num(); put("U "); putdec(malloc_usable_size(slot[s])); put("\n"); break;
    case 't': put("T "); putdec((unsigned long)malloc_trim((size_t)num())); put("\n"); break;
    case 'o': a = num(); b = num(); put("O "); putsigned(mallopt((int)a, (int)b)); put("\n"); break;
    case 's': { void *q = sbrk((intptr_t)num()); put("S "); puthex((unsigned long)((char *)q - base)); put("\n"); break; }
    case 'i': { struct mallinfo2 mi = mallinfo2(); put("I ");
                size_t v[9] = {mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd, mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost};
                for (int i = 0; i < 9; i++) { puthex(v[i]); put(i < 8 ? " " : "\n"); } break; }
    case 'x': { a = num(); void *q = mmap(base + a, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
                blocked = 1; put(q == base + a ? "X 1\n" : "X 0\n"); break; }
    case 'R': put("R "); putdec(heap_rss_kb()); put("\n"); break;
    case '\n': case ' ': continue;
    default: put("?\n"); flush(); return 3;
    }
    while (*cur && *cur != '\n') cur++;
  }
  put("B "); puthex((unsigned long)((char *)sbrk(0) - base)); put("\n");
  flush();
  return 0;
}

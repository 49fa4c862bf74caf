"""Named op programs that exercise the kernel behaviours of anonymous private memory and brk.

They follow the table of verified behaviours in the kernel reference (linux-mm.md §18) and the
error cases of its probes. Each is compared with the real kernel by
``memsim.oracle.compare_kernel`` (tests/oracle/test_kernel_oracle.py, ``memsim verify-kernel``);
none carries an expected number: the real kernel is the expectation.
"""

from __future__ import annotations

SCENARIOS: dict[str, str] = {
    # --- brk ------------------------------------------------------------------------------
    "sbrk_grow_touch_shrink": """
        b1 = sbrk 1
        mark sbrk(1)
        b2 = sbrk 5000
        mark sbrk(5000)
        read b1
        mark read old break
        write b1
        mark write page 0
        write b2+4999
        mark write last byte
        b3 = sbrk 0
        sbrk -5001
        mark shrink to start
        sbrk -1
        mark shrink below start
    """,
    "sbrk_large_and_partial_shrink": """
        b = sbrk 1M
        write b 1M
        mark 1 MiB written
        sbrk -300000
        mark shrink by 300000
        sbrk 4096
        mark regrow one page
        read brk0 1M every=4096
        mark read past the break
    """,
    "brk_gap_rule": """
        blk = mmap 4096 r addr=brk0+1M noreplace
        mark blocker
        r1 = brk brk0-4096
        r2 = brk brk0+1M-4096
        mark up to one page below the blocker
        r3 = brk brk0+1M-4095
        r4 = brk brk0+1M+8192
        mark refused
        r5 = brk brk0+10
        mark shrink to brk0+10
        r6 = brk 0
    """,
    "heap_split_and_holes": """
        b = sbrk 64k
        write b 64k
        mprotect b+16k 16k r
        mark heap split by mprotect
        c = sbrk 16k
        mark grow after the split
        d = sbrk -40k
        mark shrink across the split
        e = sbrk -8k
        mark shrink into the read-only piece
        munmap brk0+4096 4096
        mark hole in the heap
        f = sbrk -32k
        mark shrink over the hole
        g = sbrk 8k
        h = mmap 4096 rw addr=brk0+64k fixed
        i = sbrk 64k
        mark grow into a fixed mapping
        r = brk brk0+20000
        mark raw brk
        m = mremap brk0 8192 16384 maymove
        mark mremap the heap away
    """,
    # --- mmap placement, merging ----------------------------------------------------------
    "mmap_adjacent_merge": """
        a = mmap 16k rw
        b = mmap 16k rw
        mark two rw mappings
        c = mmap 16k r
        mark a read-only one
        d = mmap 16k rw
        mark rw below the read-only one
        write a 16k
        write b 16k
        mark written
    """,
    "thp_alignment": """
        s = mmap 4096 rw
        a = mmap 2M rw
        b = mmap 4M rw
        c = mmap 2M+4096 rw
        d = mmap 3M rw
        e = mmap 32k rw
        f = mmap 2M rw noreserve
        mark six mappings
    """,
    "mmap_hint_and_fixed": """
        a = mmap 64k rw
        b = mmap 4096 r addr=0x200000000
        c = mmap 4096 r addr=0x1000
        d = mmap 4096 rw addr=a noreplace
        mark hints
        e = mmap 8192 r addr=a+16k fixed
        mark fixed over the middle
        write a 64k
        mark write through
        f = mmap 16k rw addr=a fixed
        mark fixed over the written start
    """,
    "mmap_populate": """
        a = mmap 1M rw populate
        mark populated
        b = mmap 64k r populate
        mark read-only populated
    """,
    # --- demand paging --------------------------------------------------------------------
    "zero_page_then_write": """
        m = mmap 1M rw
        mark mapped
        read m 1M every=4096
        mark read every page
        write m 1M
        mark write every page
        read m 1M
        mark read again
        munmap m 1M
        mark unmapped
    """,
    "strided_touches": """
        m = mmap 8M rw
        write m 8M every=12288
        mark every third page
        read m+4096 8M-4096 every=8192
        mark reads in between
        write m 8M every=1000
        mark dense stride
    """,
    "one_gib_page_tables": """
        m = mmap 1G rw
        mark mapped
        write m 1G every=4096
        mark 1 GiB written
        munmap m 1G
        mark unmapped
    """,
    # --- munmap ---------------------------------------------------------------------------
    "munmap_holes": """
        m = mmap 64k rw
        write m 64k
        mark written
        munmap m+32k 4096
        mark hole in the middle
        munmap m 4096
        mark first page
        munmap m+60k 4096
        mark last page
        munmap m+16k 1
        mark len 1 unmaps a page
        munmap m 64k
        mark the rest (with holes)
        munmap m 64k
        mark again: nothing there
    """,
    "munmap_page_table_freeing": """
        a = mmap 4M rw
        write a 4M every=4096
        mark 4 MiB written
        munmap a+2M 2M
        mark unmap the upper 2 MiB
        munmap a+4096 8192
        mark small hole
        munmap a 2M
        mark all gone
    """,
    # --- mprotect -------------------------------------------------------------------------
    "mprotect_split_merge": """
        m = mmap 64k rw
        mark mapped
        mprotect m+16k 4096 r
        mark middle page read-only
        mprotect m+16k 4096 rw
        mark back to rw (re-merge)
        mprotect m 4096 none
        mark first page none
        mprotect m 4096 rw
        mark first page back
        mprotect m+60k 4096 r
        mark last page read-only
        mprotect m 64k r
        mark all read-only
        mprotect m 64k rw
        mark all rw
    """,
    "mprotect_after_write": """
        m = mmap 64k rw
        write m 64k
        mprotect m 32k r
        mark lower half read-only
        write m+32k 4096
        write m 4096
        mark write to read-only
        mprotect m 64k none
        read m
        mark none
    """,
    # --- mremap ---------------------------------------------------------------------------
    "mremap_grow_shrink_move": """
        a = mmap 16k rw
        g = mmap 4096 none addr=a-16k noreplace
        write a
        mark setup
        r1 = mremap a 16k 8k
        mark shrink in place
        r2 = mremap a 8k 16k
        mark grow in place
        blk = mmap 4096 r addr=a+16k noreplace
        r3 = mremap a 16k 32k
        mark grow blocked
        r4 = mremap a 16k 32k maymove
        mark grow by moving
        write r4 32k
        mark written after move
        r5 = mremap a 4096 8192 maymove
        mark old address now unmapped
    """,
    "mremap_move_written": """
        a = mmap 1M rw
        write a 1M
        mark written
        b = mremap a 1M 4M maymove
        mark moved to a larger place
        c = mmap 1M rw
        mark a new mapping
        d = mremap b 4M 1M
        mark shrink the moved one
        e = mremap d 1M 1M maymove fixed=c
        mark move onto the new mapping (fixed)
    """,
    # --- madvise --------------------------------------------------------------------------
    "madvise_dontneed": """
        m = mmap 4M rw
        write m 4M every=4096
        mark written
        madvise m+1M 1M dontneed
        mark dontneed 1 MiB
        madvise m 4M dontneed
        mark dontneed all
        read m 4M every=4096
        mark read after dontneed
        write m 8192
        mark write after dontneed
    """,
    "madvise_dontneed_1g": """
        m = mmap 1G rw
        write m 1G every=4096
        mark 1 GiB written
        madvise m 1G dontneed
        mark dontneed the GiB
    """,
    # --- stack ----------------------------------------------------------------------------
    "stack_growth": """
        write stack-64k
        mark 64 KiB below the stack
        write stack-3M
        mark 3 MiB below
        read stack-3M-4096
        mark read just below
    """,
    "stack_guard_gap": """
        g = mmap 4096 r addr=stack-2M noreplace
        mark blocker 2 MiB below the stack
        write stack-1M
        mark growing to 1 MiB above the blocker
        write stack-1536k
        mark deeper, into the guard gap
        h = mmap 4096 r addr=stack-1M-8192 noreplace
        mark a hint inside the gap
    """,
    "growsdown_and_map_stack": """
        k = mmap 64k rw growsdown
        mark growsdown mapped
        write k-4096
        mark write just below it
        write k-2M
        mark far below
        read k+4096
        mark read inside
        st = mmap 1M rw stack
        write st 1M
        mark MAP_STACK
    """,
    # --- transparent huge pages (madvise mode: only MADV_HUGEPAGE regions) ------------------
    "thp_madvise": """
        h = mmap 4M rw
        madvise h 4M hugepage
        mark madvised
        write h
        mark one byte written
        write h+2M 4096
        mark second huge page
        read h+3M
        mark read
        madvise h 2M dontneed
        mark dontneed the first 2 MiB
        munmap h+2M 4096
        mark split by munmap
        n = mmap 4M rw
        madvise n 4M nohugepage
        write n 4M every=4096
        mark nohugepage
    """,
    "madvise_collapse": """
        m = mmap 4M rw
        write m 8192
        mark two pages written
        madvise m 4M collapse
        mark MADV_COLLAPSE: the first 2 MiB collapses, the empty second one fails
        k = mmap 1M rw
        madvise k 1M collapse
        mark no aligned 2 MiB inside
        p = mmap 8M rw
        write p 8M every=1M
        madvise p 8M collapse
        mark one page in every MiB
    """,
    # --- rlimits --------------------------------------------------------------------------
    "rlimit_data": """
        setrlimit data +1M +1M
        b1 = sbrk 512k
        mark sbrk 512 KiB within the limit
        b2 = sbrk 2M
        mark sbrk 2 MiB refused
        m1 = mmap 2M rw
        m2 = mmap 2M r
        mark rw refused, r mapped
        m3 = mmap 256k rw
        mark fits
        mprotect m2 2M rw
        mark mprotect to rw refused
    """,
    "rlimit_data_shrink_refused": """
        b = sbrk 1M
        mark sbrk 1 MiB
        setrlimit data 512k inf
        s1 = sbrk -4096
        mark shrink above the limit
        s2 = sbrk -1M+4096
        mark shrink to the start
    """,
    "rlimit_as": """
        setrlimit as +4M inf
        m1 = mmap 2M r
        mark 2 MiB read-only
        m2 = mmap 4M r
        mark 4 MiB refused
        b = sbrk 4M
        mark sbrk 4 MiB refused
        b2 = sbrk 1M
        mark sbrk 1 MiB ok
        r = mremap m1 2M 4M maymove
        mark mremap grow refused
    """,
    "rlimit_stack": """
        setrlimit stack +64k inf
        write stack-32k
        mark within the limit
        write stack-128k
        mark beyond the limit
        read stack-60k
        mark up to the limit
        setrlimit stack inf inf
        write stack-128k
        mark limit lifted
    """,
    "overcommit_heuristic": """
        a = mmap ram rw
        mark RAM
        b = mmap ram+4096 rw
        mark RAM + 1 page
        c = mmap ram+4096 rw noreserve
        mark RAM + 1 page, noreserve
        d = mmap ram-1G rw
        mark another one (the heuristic is per request)
        e = mmap ram+4096 r
        mark read-only: not accounted
        f = mmap ram+4096 none
        mprotect f ram+4096 rw
        mark PROT_NONE, then mprotect rw
        g = mmap 64k rw
        h = mremap g 64k ram+64k maymove
        mark mremap grows by RAM
        b1 = sbrk ram+4096
        mark sbrk beyond RAM
    """,
    # --- overcommit, huge sizes -----------------------------------------------------------
    "tib_noreserve": """
        t = mmap 1T rw
        mark 1 TiB accounted (mode 0: refused)
        m = mmap 1T rw noreserve
        mark 1 TiB noreserve
        write m 1G every=4096
        mark first GiB
        write m+1G 1023G every=1G
        mark one byte per further GiB
        munmap m 1T
        mark unmapped
    """,
    # --- bad input ------------------------------------------------------------------------
    "mmap_errors": """
        p = mmap 8192 rw
        e1 = mmap 0 r
        e2 = mmap 4096 r flags=0x20
        e3 = mmap 4096 r addr=p+1 fixed
        e4 = mmap 0x800000000000 r noreserve
        e5 = mmap -1 rw
        e6 = mmap -4096 rw
        e7 = mmap 4096 0x10
        e8 = mmap 4096 r addr=p noreplace
        e9 = mmap 4096 r addr=0x7ffffffff000 fixed
        e10 = mmap 4096 r flags=0x23
        e11 = mmap 4096 r addr=0x1000 fixed noreplace
        mark after the errors
    """,
    "munmap_errors": """
        p = mmap 16k rw
        munmap p+1 4096
        munmap p 0
        munmap p -1
        munmap p -4096
        munmap 0x100000000 4096
        munmap 0x800000000000 4096
        munmap 0x7ffffffff000 8192
        munmap p+4096 1
        mark after the errors
    """,
    "mprotect_errors": """
        p = mmap 8192 rw
        munmap p+4096 4096
        mprotect 0x100000000 4096 r
        mprotect p 8192 r
        mprotect p+1 4096 r
        mprotect p 4096 0x10
        mprotect p 4096 0x8
        mprotect p 0 r
        mprotect p -4096 r
        mark after the errors
    """,
    "mremap_madvise_errors": """
        p = mmap 16k rw
        r1 = mremap p+1 4096 8192 maymove
        r2 = mremap p 4096 0 maymove
        r3 = mremap 0x100000000 4096 8192 maymove
        r4 = mremap p 4096 8192 fixed=p+8192
        r5 = mremap p 8192 16384 maymove fixed=p+4096
        r6 = mremap p 4096 8192 dontunmap
        r7 = mremap p 32k 64k maymove
        madvise p+1 4096 dontneed
        madvise p 4096 99
        madvise 0x100000000 4096 dontneed
        madvise p -4096 dontneed
        mark after the errors
    """,
    "sbrk_errors": """
        b = sbrk -1
        b2 = sbrk 0x7fffffffffffffff
        b3 = sbrk -0x7fffffffffffffff
        b4 = sbrk 0x100000000000
        mark after the errors
    """,
    "segv_kinds": """
        m = mmap 16k r
        write m
        mark write to read-only
        mprotect m 16k none
        read m+4096
        mark read of none
        munmap m+8192 4096
        write m+8192
        mark write to unmapped
        n = mmap 8192 rw
        write n 16k
        mark write across the end
    """,
    # --- found by the random programs (see KNOWN in tests/oracle/test_kernel_oracle.py) ----
    "failed_fixed_mmap_keeps_splits": """
        a = mmap 1M r
        setrlimit data +16k inf
        mark
        b = mmap 64k rw fixed addr=a+256k
        mark fixed rw over the middle (within the limit)
        c = mmap 64k rw fixed addr=a
        mark fixed rw at the start, refused by RLIMIT_DATA
        setrlimit as +0 inf
        d = mmap 64k r fixed addr=a+512k
        e = mmap 128k r fixed addr=a-32k
        mark fixed across the start of a, refused by RLIMIT_AS
    """,
    "mremap_dontunmap_new_addr": """
        p = mmap 64k rw
        write p 64k
        r1 = mremap p 4096 4096 dontunmap maymove new=anchor-1G
        mark dontunmap with a free hint
        r2 = mremap p 4096 4096 dontunmap maymove new=p
        r3 = mremap p 4096 4096 dontunmap maymove new=p+1
        r4 = mremap p 4096 4096 dontunmap maymove new=0x7ffffffff000
        r5 = mremap 0 4096 4096 dontunmap maymove
        mark refused hints
    """,
    "mremap_fixed_shrink_across_vmas": """
        a = mmap 64k rw
        b = mmap 64k r
        write a 64k
        mark two VMAs
        r1 = mremap b 128k 4096 maymove fixed=anchor-1G
        mark shrink and move, the old range spans both
    """,
    "mremap_fixed_move_multiple_vmas": """
        t = mmap 64k r
        s = mmap 64k rw
        write s 64k
        munmap s+16k 16k
        mark source with a hole
        m = mremap s 64k 64k maymove fixed=t
        mark moved onto t
        write t
        read t+16k
        mark touch the target
        u = mmap 64k r
        v = mmap 32k rw
        w = mmap 32k rwx
        mark two adjacent source VMAs
        n = mremap w 64k 64k maymove fixed=u
        mark moved together
    """,
}


def max_map_count_program(max_map_count: int | None = None) -> str:
    """Split one PROT_NONE mapping page by page (mprotect of every other page) until
    vm.max_map_count refuses, then try what needs one more VMA at the limit: a non-mergeable
    mmap, a hole punched by munmap, an mprotect split, an mremap move, a brk.

    ``max_map_count`` defaults to this machine's /proc/sys/vm/max_map_count (what the simulated
    Machine is given by the oracle). The program has about that many lines."""
    if max_map_count is None:
        try:
            with open("/proc/sys/vm/max_map_count") as f:
                max_map_count = int(f.read())
        except (OSError, ValueError):
            max_map_count = 65530
    n = max_map_count // 2 + 16
    lines = [f"b = mmap {2 * n * 4096} none noreserve", "mark"]
    lines += [f"mprotect b+{2 * i * 4096} 4096 r" for i in range(n)]
    lines += [
        "mark split to the limit",
        "x = mmap 4096 rw",
        "y = mmap 4096 r addr=0x200000000",
        "mark new mappings at the limit",
        f"munmap b+{2 * (n - 1) * 4096 + 4096} 4096",
        "mark punch a hole at the limit",
        f"mprotect b+{2 * (n - 1) * 4096 + 4096} 4096 r",
        "mark re-merge one pair",
        "munmap b 8192",
        "mark unmap from the start",
        "m = mremap b+16384 4096 8192 maymove",
        "s = sbrk 4096",
        "mark mremap and sbrk at the limit",
    ]
    return "\n".join(lines) + "\n"

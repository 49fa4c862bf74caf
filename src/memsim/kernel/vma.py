"""Virtual memory areas: the VMA record, its flags, and the sorted VMA set of one process.

A process's address space is a sorted, non-overlapping set of VMAs (the kernel keeps them in
a maple tree; memsim keeps two parallel Python lists, ``starts`` and ``vmas``, searched with
``bisect``). Every VMA covers whole pages, ``[vm_start, vm_end)``, and carries its flags
(``vm_flags``), its page offset (``vm_pgoff``), a file (``vm_file``: a path, or None for
anonymous memory) and an ``anon_vma`` (None until the first write fault; then a small integer
that identifies the kernel's ``anon_vma`` object, shared by the pieces of a split)::

    starts: [ 0x555555554000, 0x555555555000, ...            , 0x7ffffffde000 ]
    vmas:   [ VMA r--p exe  , VMA r-xp exe   , ... [heap] ... , VMA rw-p [stack] ]
             |<-- vm_start .. vm_end -->|  gaps between VMAs are unmapped

    find_vma(addr)  = the first VMA with vm_end > addr (it may start above addr)  O(log n)

Mirrors ``find_vma``, ``find_vma_intersection``, ``vma_start_gap``/``vm_end_gap``, the
mergeability tests of ``is_mergeable_vma``/``is_mergeable_anon_vma`` and the pgoff rule of
``can_vma_merge_before/after`` (mm/vma.c), ``__split_vma`` (here :meth:`VMATree.split`) and
the classification used by ``vm_stat_account`` (``is_exec_mapping``, ``is_stack_mapping``,
``is_data_mapping`` in mm/internal.h). The policy (when to merge or split, what to charge)
lives in :mod:`memsim.kernel.mm`; this module only keeps the set consistent.

Invariants (:meth:`VMATree.check`): both lists have the same length; ``starts[i] ==
vmas[i].vm_start``; every VMA is non-empty and page aligned; VMAs are sorted and do not
overlap; every address is below ``TASK_SIZE``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

from sortedcontainers import SortedList

from memsim.kernel.abi import STACK_GUARD_GAP, TASK_SIZE
from memsim.units import PAGE_SHIFT, PAGE_SIZE

# --- vm_flags bits (include/linux/mm.h, x86-64) ---------------------------------------------
VM_NONE = 0x00000000
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100
VM_PFNMAP = 0x00000400
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_HUGETLB = 0x00400000
VM_WIPEONFORK = 0x02000000
VM_DONTDUMP = 0x04000000
VM_SOFTDIRTY = 0x08000000
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000

VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_MAY_FLAGS = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK = VM_GROWSDOWN
#: VM_DATA_DEFAULT_FLAGS on x86-64 (brk, bss)
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAY_FLAGS
#: VM_STACK_FLAGS: the main stack at exec
VM_STACK_FLAGS = VM_GROWSDOWN | VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT
#: flags ignored when deciding whether two VMAs may merge (VM_IGNORE_MERGE)
VM_IGNORE_MERGE = VM_SOFTDIRTY
#: VMAs with any of these never merge (VM_SPECIAL)
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP

#: smaps "VmFlags" mnemonics in bit order (fs/proc/task_mmu.c show_smap_vma_flags)
VM_FLAG_MNEMONICS: tuple[tuple[int, str], ...] = (
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"),
    (VM_MAYREAD, "mr"), (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"),
    (VM_GROWSDOWN, "gd"), (VM_PFNMAP, "pf"), (VM_LOCKED, "lo"), (VM_IO, "io"),
    (VM_DONTCOPY, "dc"), (VM_DONTEXPAND, "de"), (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"),
    (VM_HUGETLB, "ht"), (VM_WIPEONFORK, "wf"), (VM_DONTDUMP, "dd"), (VM_SOFTDIRTY, "sd"),
    (VM_MIXEDMAP, "mm"), (VM_HUGEPAGE, "hg"), (VM_NOHUGEPAGE, "nh"),
)
_MNEMONIC_TO_FLAG = {name: bit for bit, name in VM_FLAG_MNEMONICS}


def flags_from_mnemonics(text: str) -> int:
    """``"rd wr mr mw me ac" -> VM_READ|VM_WRITE|...`` (the smaps VmFlags line, inverted)."""
    flags = 0
    for word in text.split():
        if word not in _MNEMONIC_TO_FLAG:
            raise ValueError(f"unknown VmFlags mnemonic {word!r}")
        flags |= _MNEMONIC_TO_FLAG[word]
    return flags


def flags_to_mnemonics(flags: int) -> str:
    """The smaps ``VmFlags:`` text for ``flags`` (without the trailing space)."""
    return " ".join(name for bit, name in VM_FLAG_MNEMONICS if flags & bit)


def is_exec_mapping(flags: int) -> bool:
    """mm/internal.h ``is_exec_mapping``: executable, not writable, not a stack."""
    return (flags & (VM_EXEC | VM_WRITE | VM_STACK)) == VM_EXEC


def is_stack_mapping(flags: int) -> bool:
    """mm/internal.h ``is_stack_mapping``: VM_GROWSDOWN (x86's VM_STACK)."""
    return (flags & VM_STACK) == VM_STACK


def is_data_mapping(flags: int) -> bool:
    """mm/internal.h ``is_data_mapping``: private, writable, not a stack."""
    return (flags & (VM_WRITE | VM_SHARED | VM_STACK)) == VM_WRITE


class VMA:
    """One ``vm_area_struct``: ``[vm_start, vm_end)`` with flags, pgoff, file and anon_vma.

    ``name`` is a fixed name for special mappings (``[vdso]``, ``[vvar]``); ``[heap]`` and
    ``[stack]`` are not stored but derived from the mm (as ``/proc`` does). ``dev``/``inode``
    identify the backing file in maps output.
    """

    __slots__ = ("vm_start", "vm_end", "vm_flags", "vm_pgoff", "vm_file", "anon_vma",
                 "name", "dev", "inode")

    def __init__(self, vm_start: int, vm_end: int, vm_flags: int, vm_pgoff: int | None = None,
                 vm_file: str | None = None, anon_vma: int | None = None,
                 name: str | None = None, dev: tuple[int, int] = (0, 0),
                 inode: int = 0) -> None:
        self.vm_start = vm_start
        self.vm_end = vm_end
        self.vm_flags = vm_flags
        # anonymous private VMAs: vm_pgoff = vm_start >> PAGE_SHIFT at creation
        self.vm_pgoff = vm_start >> PAGE_SHIFT if vm_pgoff is None else vm_pgoff
        self.vm_file = vm_file
        self.anon_vma = anon_vma
        self.name = name
        self.dev = dev
        self.inode = inode

    # --- geometry ------------------------------------------------------------------------
    @property
    def pages(self) -> int:
        """Number of pages covered (``vma_pages``)."""
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    @property
    def size(self) -> int:
        return self.vm_end - self.vm_start

    def vm_start_gap(self) -> int:
        """``vm_start_gap``: a VM_GROWSDOWN VMA keeps ``stack_guard_gap`` free below it."""
        if self.vm_flags & VM_GROWSDOWN:
            return max(self.vm_start - STACK_GUARD_GAP, 0)
        return self.vm_start

    def vm_end_gap(self) -> int:
        """``vm_end_gap``: on x86 (no grows-up stacks) simply ``vm_end``."""
        return self.vm_end

    def is_anonymous(self) -> bool:
        """``vma_is_anonymous``: no file and not a special mapping."""
        return self.vm_file is None and self.name is None

    def is_special(self) -> bool:
        return bool(self.vm_flags & VM_SPECIAL) or self.name is not None

    def perms(self) -> str:
        """The four-letter ``rwxp``/``rw-s`` permission column of ``/proc/PID/maps``."""
        f = self.vm_flags
        return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + \
            ("x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")

    def copy(self) -> VMA:
        """``vm_area_dup``."""
        return VMA(self.vm_start, self.vm_end, self.vm_flags, self.vm_pgoff, self.vm_file,
                   self.anon_vma, self.name, self.dev, self.inode)

    def __repr__(self) -> str:
        what = self.name or self.vm_file or "anon"
        return (f"VMA({self.vm_start:#x}-{self.vm_end:#x} {self.perms()} "
                f"[{flags_to_mnemonics(self.vm_flags)}] {what})")


def anon_vma_compatible(a: int | None, b: int | None) -> bool:
    """``is_mergeable_anon_vma`` without fork history: either side NULL, or the same object."""
    return a is None or b is None or a == b


def can_merge_after(prev: VMA, start: int, flags: int, vm_file: str | None, pgoff: int,
                    anon_vma: int | None) -> bool:
    """May ``[start, ...)`` with these attributes be appended to ``prev``?

    ``can_vma_merge_after`` + ``is_mergeable_vma``: adjacent, same flags (ignoring
    VM_SOFTDIRTY), same file, no special mapping, compatible anon_vma, contiguous pgoff.
    """
    return (prev.vm_end == start
            and ((prev.vm_flags ^ flags) & ~VM_IGNORE_MERGE) == 0
            and prev.vm_file == vm_file and not prev.is_special() and not flags & VM_SPECIAL
            and anon_vma_compatible(prev.anon_vma, anon_vma)
            and prev.vm_pgoff + prev.pages == pgoff)


def can_merge_before(nxt: VMA, end: int, flags: int, vm_file: str | None, pgoff: int,
                     npages: int, anon_vma: int | None) -> bool:
    """May a range ending at ``end`` (``npages`` pages from ``pgoff``) be prepended to ``nxt``?

    ``can_vma_merge_before`` + ``is_mergeable_vma``.
    """
    return (nxt.vm_start == end
            and ((nxt.vm_flags ^ flags) & ~VM_IGNORE_MERGE) == 0
            and nxt.vm_file == vm_file and not nxt.is_special() and not flags & VM_SPECIAL
            and anon_vma_compatible(nxt.anon_vma, anon_vma)
            and pgoff + npages == nxt.vm_pgoff)


class VMATree:
    """The sorted VMA set of one mm (the kernel's maple tree), with O(log n) lookups.

    Insertion and removal are list operations (a memmove of pointers), so O(n) in the worst
    case but cheap for the 65530 VMAs ``vm.max_map_count`` allows.

    Tricky: like the maple tree's gap tracking, the free gaps between VMAs are indexed so
    that the top-down search does not walk every VMA. Each gap ``[prev.vm_end,
    vm_start_gap(next))`` is kept in a sorted list per size class (the bit length of its
    size); :meth:`highest_gap` looks at the top candidates of each class that can hold the
    request. Every change of a VMA's bounds therefore goes through this class
    (:meth:`insert`, :meth:`remove`, :meth:`remove_range`, :meth:`set_start`,
    :meth:`set_end`, :meth:`split`).
    """

    __slots__ = ("starts", "vmas", "_gap_of", "_classes")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.vmas: list[VMA] = []
        # key: the VMA above the gap (None: the gap above the last VMA) -> (class, end, start)
        self._gap_of: dict[VMA | None, tuple[int, int, int]] = {}
        self._classes: dict[int, SortedList] = {}
        self._refresh_gap(0)

    def __len__(self) -> int:
        return len(self.vmas)

    def __iter__(self) -> Iterator[VMA]:
        return iter(self.vmas)

    # --- the gap index ----------------------------------------------------------------------
    def _refresh_gap(self, i: int) -> None:
        """Recompute the gap just below ``vmas[i]`` (``i == len``: the gap above the last)."""
        vmas = self.vmas
        key = vmas[i] if i < len(vmas) else None
        start = vmas[i - 1].vm_end if i > 0 else 0
        end = vmas[i].vm_start_gap() if i < len(vmas) else TASK_SIZE
        old = self._gap_of.pop(key, None)
        if old is not None:
            lst = self._classes[old[0]]
            lst.remove((old[1], old[2]))
            if not lst:
                del self._classes[old[0]]
        if end > start:
            cls = (end - start).bit_length()
            lst = self._classes.get(cls)
            if lst is None:
                lst = self._classes[cls] = SortedList()
            lst.add((end, start))
            self._gap_of[key] = (cls, end, start)

    def _drop_gap(self, key: VMA | None) -> None:
        old = self._gap_of.pop(key, None)
        if old is not None:
            lst = self._classes[old[0]]
            lst.remove((old[1], old[2]))
            if not lst:
                del self._classes[old[0]]

    def highest_gap(self, length: int, low: int, high: int) -> int | None:
        """The end of the highest free gap, clipped to ``[low, high)``, that holds ``length``
        bytes (``unmapped_area_topdown``), or None."""
        best = -1
        min_cls = length.bit_length()
        for cls, lst in self._classes.items():
            if cls < min_cls:
                continue              # every gap of this class is shorter than length
            j = lst.bisect_left((high + 1, -1))
            if j < len(lst):          # the gap that straddles high (clipped)
                end, start = lst[j]
                if start < high and high - max(start, low) >= length and high > best:
                    best = high
                    continue
            j -= 1
            while j >= 0:
                end, start = lst[j]
                if end <= best or end - length < low:
                    break
                if end - max(start, low) >= length:
                    best = end
                    break
                j -= 1
        return best if best >= 0 else None

    # --- lookups -------------------------------------------------------------------------
    def index_of_find(self, addr: int) -> int:
        """Index of the first VMA with ``vm_end > addr`` (``len(self)`` if none)."""
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and self.vmas[i].vm_end > addr:
            return i
        return i + 1

    def find_vma(self, addr: int) -> VMA | None:
        """``find_vma``: the first VMA with ``vm_end > addr``, or None."""
        i = bisect_right(self.starts, addr) - 1
        vmas = self.vmas
        if i >= 0 and vmas[i].vm_end > addr:
            return vmas[i]
        i += 1
        return vmas[i] if i < len(vmas) else None

    def vma_lookup(self, addr: int) -> VMA | None:
        """``vma_lookup``: the VMA containing ``addr``, or None."""
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and self.vmas[i].vm_end > addr:
            return self.vmas[i]
        return None

    def find_vma_intersection(self, start: int, end: int) -> VMA | None:
        """``find_vma_intersection``: the first VMA overlapping ``[start, end)``."""
        v = self.find_vma(start)
        if v is not None and v.vm_start < end:
            return v
        return None

    def find_vma_prev(self, addr: int) -> tuple[VMA | None, VMA | None]:
        """``find_vma_prev``: (the VMA that ``find_vma`` gives, the one before it)."""
        i = self.index_of_find(addr)
        v = self.vmas[i] if i < len(self.vmas) else None
        prev = self.vmas[i - 1] if i > 0 else None
        return v, prev

    def overlapping(self, start: int, end: int) -> list[VMA]:
        """Every VMA that intersects ``[start, end)``, in address order."""
        i = self.index_of_find(start)
        out = []
        vmas = self.vmas
        while i < len(vmas) and vmas[i].vm_start < end:
            out.append(vmas[i])
            i += 1
        return out

    def prev_of(self, vma: VMA) -> VMA | None:
        i = self.index(vma)
        return self.vmas[i - 1] if i > 0 else None

    def next_of(self, vma: VMA) -> VMA | None:
        i = self.index(vma)
        return self.vmas[i + 1] if i + 1 < len(self.vmas) else None

    def index(self, vma: VMA) -> int:
        i = bisect_right(self.starts, vma.vm_start) - 1
        if i < 0 or self.vmas[i] is not vma:
            raise KeyError(f"{vma!r} is not in this VMA tree")
        return i

    # --- modification (no policy: callers decide) -------------------------------------------
    def insert(self, vma: VMA) -> None:
        """``vma_link``: insert a VMA that overlaps nothing."""
        i = bisect_right(self.starts, vma.vm_start)
        if i > 0 and self.vmas[i - 1].vm_end > vma.vm_start:
            raise AssertionError(f"{vma!r} overlaps {self.vmas[i - 1]!r}")
        if i < len(self.vmas) and self.vmas[i].vm_start < vma.vm_end:
            raise AssertionError(f"{vma!r} overlaps {self.vmas[i]!r}")
        self.starts.insert(i, vma.vm_start)
        self.vmas.insert(i, vma)
        self._refresh_gap(i)
        self._refresh_gap(i + 1)

    def remove(self, vma: VMA) -> None:
        i = self.index(vma)
        self.remove_range(i, i + 1)

    def remove_range(self, i: int, j: int) -> list[VMA]:
        """Detach ``vmas[i:j]`` (``vms_gather_munmap_vmas``); returns them."""
        victims = self.vmas[i:j]
        for v in victims:
            self._drop_gap(v)
        del self.starts[i:j]
        del self.vmas[i:j]
        self._refresh_gap(i)
        return victims

    def set_start(self, vma: VMA, new_start: int) -> None:
        """Move ``vm_start`` (stack growth, merge, trim) keeping the order valid."""
        i = self.index(vma)
        vma.vm_start = new_start
        self.starts[i] = new_start
        self._refresh_gap(i)

    def set_end(self, vma: VMA, new_end: int) -> None:
        """Move ``vm_end`` (brk, merge, trim, mremap in place)."""
        i = self.index(vma)
        vma.vm_end = new_end
        self._refresh_gap(i + 1)

    def split(self, vma: VMA, addr: int) -> tuple[VMA, VMA]:
        """``__split_vma``: cut ``vma`` at ``addr`` into (low, high); returns both pieces.

        The lower piece keeps the original object; the upper piece is a copy whose
        ``vm_pgoff`` advances by the pages below ``addr``. The map_count limit is the
        caller's business (``split_vma`` vs ``__split_vma``).
        """
        if not (vma.vm_start < addr < vma.vm_end) or addr & (PAGE_SIZE - 1):
            raise AssertionError(f"bad split of {vma!r} at {addr:#x}")
        high = vma.copy()
        high.vm_start = addr
        high.vm_pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
        vma.vm_end = addr
        i = self.index(vma)
        self.starts.insert(i + 1, addr)
        self.vmas.insert(i + 1, high)
        self._refresh_gap(i + 2)
        return vma, high

    def check(self) -> None:
        """Assert the invariants listed in the module docstring."""
        assert len(self.starts) == len(self.vmas), "parallel lists differ in length"
        prev_end = 0
        for s, v in zip(self.starts, self.vmas, strict=True):
            assert s == v.vm_start, f"starts[] out of date for {v!r}"
            assert v.vm_start < v.vm_end, f"empty VMA {v!r}"
            assert not (v.vm_start | v.vm_end) & (PAGE_SIZE - 1), f"unaligned VMA {v!r}"
            assert v.vm_start >= prev_end, f"VMA {v!r} overlaps its predecessor"
            assert v.vm_end <= TASK_SIZE, f"VMA {v!r} above TASK_SIZE"
            prev_end = v.vm_end
        # the gap index holds exactly the non-empty gaps between consecutive VMAs
        want = {}
        for i in range(len(self.vmas) + 1):
            start = self.vmas[i - 1].vm_end if i > 0 else 0
            end = self.vmas[i].vm_start_gap() if i < len(self.vmas) else TASK_SIZE
            if end > start:
                key = self.vmas[i] if i < len(self.vmas) else None
                want[key] = ((end - start).bit_length(), end, start)
        assert want == self._gap_of, "gap index out of date"
        assert sum(len(x) for x in self._classes.values()) == len(want)

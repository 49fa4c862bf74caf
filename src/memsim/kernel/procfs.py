"""``/proc/PID/status``, ``statm``, ``maps`` and ``smaps`` of a simulated process, in the kernel's
format.

Pure views: every figure is read from the :class:`memsim.kernel.mm.MM` and its page table;
nothing here changes state. Field names, order, widths and padding follow
``fs/proc/task_mmu.c`` (``task_mem``, ``show_map_vma``/``show_vma_header_prefix``,
``show_smap``, ``show_smap_vma_flags``) and ``fs/proc/array.c`` of Linux 6.18::

    VmPeak:	    2380 kB          "%s\\t" + right-aligned to 8 columns + " kB"
    7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]
    |<---- the prefix is padded with spaces to column 73 before the name ------->|
    Rss:                  16 kB    smaps: label padded to 16 columns, value to 8

Figures (status): VmPeak = max(hiwater_vm, total_vm), VmSize = total_vm, VmLck = locked_vm,
VmPin = pinned_vm, VmHWM = max(hiwater_rss, rss), VmRSS = anon + file (+ shmem, 0 here),
RssAnon/RssFile/RssShmem, VmData = data_vm, VmStk = stack_vm, VmExe = min(PAGE_ALIGN(end_code)
- start_code, exec_vm), VmLib = exec_vm - VmExe, VmPTE = pgtables_bytes / 1024, VmSwap =
swap entries. The ``[vsyscall]`` gate area is printed in maps but is not a VMA and counts
nowhere.

smaps simplifications: no page is shared with another process here, so Pss = Rss,
Shared_* = 0, anonymous pages are Private_Dirty (born dirty), file pages Private_Clean,
Referenced = Rss; KSM, LazyFree, AnonHugePages, hugetlb and Locked are 0; THPeligible
follows the VMA's flags and the THP policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memsim.kernel.layout import VSYSCALL_END, VSYSCALL_START
from memsim.kernel.vma import VM_EXEC, VMA, flags_to_mnemonics
from memsim.units import PAGE_SHIFT, PAGE_SIZE, page_align

if TYPE_CHECKING:
    from memsim.kernel.mm import MM

KB_PER_PAGE = PAGE_SIZE // 1024
#: the fields of /proc/PID/status that memsim computes, in the kernel's order
STATUS_FIELDS = ("VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile",
                 "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap",
                 "HugetlbPages")
MAPS_NAME_COLUMN = 73      # seq_setwidth(25 + 6 * sizeof(void *) - 1) + the pad character


def status_fields(mm: MM) -> dict[str, int]:
    """``task_mem``: the Vm*/Rss* figures of /proc/PID/status, in kB."""
    pt = mm.pt
    anon, file = (0, 0) if mm.dead else (pt.anon_pages, pt.file_pages)
    swap = 0 if mm.dead else pt.swap_ents
    rss = anon + file
    text = page_align(mm.end_code) - (mm.start_code & ~(PAGE_SIZE - 1))
    text = min(text, mm.exec_vm << PAGE_SHIFT)
    lib = (mm.exec_vm << PAGE_SHIFT) - text
    pgtables = 0 if mm.dead else pt.pgtables_bytes
    return {
        "VmPeak": max(mm.hiwater_vm, mm.total_vm) * KB_PER_PAGE,
        "VmSize": mm.total_vm * KB_PER_PAGE,
        "VmLck": mm.locked_vm * KB_PER_PAGE,
        "VmPin": mm.pinned_vm * KB_PER_PAGE,
        "VmHWM": max(mm.hiwater_rss, rss) * KB_PER_PAGE,
        "VmRSS": rss * KB_PER_PAGE,
        "RssAnon": anon * KB_PER_PAGE,
        "RssFile": file * KB_PER_PAGE,
        "RssShmem": 0,
        "VmData": mm.data_vm * KB_PER_PAGE,
        "VmStk": mm.stack_vm * KB_PER_PAGE,
        "VmExe": text >> 10,
        "VmLib": lib >> 10,
        "VmPTE": pgtables >> 10,
        "VmSwap": swap * KB_PER_PAGE,
        "HugetlbPages": 0,
    }


class Status(dict[str, int]):
    """The /proc/PID/status figures in kB (a dict); ``str()`` gives the /proc text."""

    def __init__(self, fields: dict[str, int], name: str = "a.out", pid: int = 1,
                 ppid: int = 1, threads: int = 1) -> None:
        super().__init__(fields)
        self.name = name
        self.pid = pid
        self.ppid = ppid
        self.threads = threads

    def __str__(self) -> str:
        head = (f"Name:\t{self.name[:15]}\nUmask:\t0022\nState:\tR (running)\n"
                f"Tgid:\t{self.pid}\nNgid:\t0\nPid:\t{self.pid}\nPPid:\t{self.ppid}\n"
                f"TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t \n"
                f"NStgid:\t{self.pid}\nNSpid:\t{self.pid}\nNSpgid:\t{self.pid}\n"
                f"NSsid:\t{self.pid}\nKthread:\t0\n")
        body = "".join(f"{k}:\t{v:8d} kB\n" for k, v in self.items())
        tail = (f"CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\n"
                f"Threads:\t{self.threads}\n")
        return head + body + tail


def status(mm: MM, name: str = "a.out", threads: int = 1) -> Status:
    return Status(status_fields(mm), name=name, pid=mm.pid, threads=threads)


def statm(mm: MM) -> str:
    """``/proc/PID/statm`` (``task_statm``), in pages: size resident shared text lib data dt,
    where shared = file + shmem pages, text = the program's code, data = data_vm + stack_vm
    and lib/dt are always 0."""
    anon, file = (0, 0) if mm.dead else (mm.pt.anon_pages, mm.pt.file_pages)
    text = (page_align(mm.end_code) - (mm.start_code & ~(PAGE_SIZE - 1))) >> PAGE_SHIFT
    return f"{mm.total_vm} {anon + file} {file} {text} 0 {mm.data_vm + mm.stack_vm} 0\n"


@dataclass(frozen=True)
class MapEntry:
    """One line of /proc/PID/maps (and the head of one smaps block)."""

    start: int
    end: int
    perms: str
    offset: int
    dev: tuple[int, int]
    inode: int
    name: str | None
    vm_flags: int
    rss_anon: int = 0      # pages
    rss_file: int = 0
    swap: int = 0
    thp_eligible: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start

    def line(self) -> str:
        """``show_map_vma``: ``start-end perms offset major:minor inode``, name at column 73."""
        prefix = (f"{self.start:08x}-{self.end:08x} {self.perms} {self.offset:08x} "
                  f"{self.dev[0]:02x}:{self.dev[1]:02x} {self.inode} ")
        if self.name is None:
            return prefix
        return prefix.ljust(MAPS_NAME_COLUMN - 1) + " " + self.name

    def smaps(self) -> str:
        """``show_smap``: the block of one VMA (see the module docstring for the figures)."""
        kb = KB_PER_PAGE
        rss = (self.rss_anon + self.rss_file) * kb
        rows = [("Size", self.size >> 10), ("KernelPageSize", 4), ("MMUPageSize", 4),
                ("Rss", rss), ("Pss", rss), ("Pss_Dirty", self.rss_anon * kb),
                ("Shared_Clean", 0), ("Shared_Dirty", 0),
                ("Private_Clean", self.rss_file * kb), ("Private_Dirty", self.rss_anon * kb),
                ("Referenced", rss), ("Anonymous", self.rss_anon * kb), ("KSM", 0),
                ("LazyFree", 0), ("AnonHugePages", 0), ("ShmemPmdMapped", 0),
                ("FilePmdMapped", 0), ("Shared_Hugetlb", 0), ("Private_Hugetlb", 0),
                ("Swap", self.swap * kb), ("SwapPss", self.swap * kb), ("Locked", 0)]
        out = [self.line()]
        out += [f"{(k + ':').ljust(16)}{v:8d} kB" for k, v in rows]
        out.append(f"{'THPeligible:'.ljust(16)}{int(self.thp_eligible):8d}")
        flags = flags_to_mnemonics(self.vm_flags)
        out.append(f"VmFlags: {flags} " if flags else "VmFlags: ")
        return "\n".join(out)


class Maps(list[MapEntry]):
    """The VMAs as /proc/PID/maps lists them; ``str()`` gives the /proc text."""

    def __str__(self) -> str:
        return "".join(e.line() + "\n" for e in self)


class Smaps(list[MapEntry]):
    """The per-VMA figures of /proc/PID/smaps; ``str()`` gives the /proc text."""

    def __str__(self) -> str:
        return "".join(e.smaps() + "\n" for e in self)


def _entry(mm: MM, v: VMA, with_counts: bool) -> MapEntry:
    offset = v.vm_pgoff << PAGE_SHIFT if v.vm_file is not None else 0
    anon = file = swap = 0
    if with_counts:
        anon, file, swap = mm.pt.counts(v.vm_start, v.vm_end)
    return MapEntry(v.vm_start, v.vm_end, v.perms(), offset, v.dev, v.inode, mm.vma_name(v),
                    v.vm_flags, anon, file, swap, with_counts and mm.thp_eligible(v))


def _gate() -> MapEntry:
    return MapEntry(VSYSCALL_START, VSYSCALL_END, "--xp", 0, (0, 0), 0, "[vsyscall]", VM_EXEC)


def maps(mm: MM) -> Maps:
    """``/proc/PID/maps``: every VMA in address order, then the ``[vsyscall]`` gate."""
    out = Maps(_entry(mm, v, False) for v in mm.tree)
    if not mm.dead:
        out.append(_gate())
    return out


def smaps(mm: MM) -> Smaps:
    """``/proc/PID/smaps``: like maps, with each VMA's resident and swap figures."""
    out = Smaps(_entry(mm, v, True) for v in mm.tree)
    if not mm.dead:
        out.append(_gate())
    return out


def parse_maps(text: str) -> list[tuple[int, int, str, str | None]]:
    """Read /proc maps text back: ``(start, end, perms, name)`` per line (for tests and the
    oracle comparisons)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(None, 5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        out.append((lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else None))
    return out


def total_kb(entries: Iterable[MapEntry]) -> int:
    """Sum of VMA sizes in kB, leaving out the gate area (what VmSize counts)."""
    return sum(e.size for e in entries if e.start < VSYSCALL_START) >> 10

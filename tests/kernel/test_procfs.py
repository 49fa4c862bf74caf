"""memsim.kernel.procfs: /proc/PID/status, maps and smaps in the kernel's format (§14)."""

from __future__ import annotations

import re

from memsim.kernel.abi import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE
from memsim.kernel.layout import Layout
from memsim.kernel.machine import Machine
from memsim.kernel.mm import MM
from memsim.kernel.procfs import (
    STATUS_FIELDS,
    maps,
    parse_maps,
    smaps,
    statm,
    status,
    status_fields,
    total_kb,
)

P = 4096
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def new_mm() -> MM:
    return MM(Machine(ram="24G"), 321, Layout.default())


def test_status_fields_come_from_the_mm_counters() -> None:
    mm = new_mm()
    f = status_fields(mm)
    assert tuple(f) == STATUS_FIELDS
    assert f["VmSize"] == mm.total_vm * 4 and f["VmData"] == mm.data_vm * 4
    assert f["VmStk"] == mm.stack_vm * 4
    assert f["VmExe"] + f["VmLib"] == mm.exec_vm * 4
    assert f["VmExe"] == 4                       # PAGE_ALIGN(end_code) - start_code
    assert f["VmRSS"] == f["RssAnon"] + f["RssFile"] + f["RssShmem"]
    assert f["VmPTE"] == mm.pt.pgtables_bytes // 1024
    assert f["VmPeak"] >= f["VmSize"] and f["VmHWM"] >= f["VmRSS"]
    assert f["VmSize"] == total_kb(maps(mm))     # [vsyscall] is not counted


def test_status_text_format() -> None:
    text = str(status(new_mm(), name="prog"))
    assert text.startswith("Name:\tprog\n")
    for field in STATUS_FIELDS:
        assert re.search(rf"^{field}:\t {{0,7}}\d+ kB$", text, re.M), field
    line = next(x for x in text.splitlines() if x.startswith("VmStk"))
    assert line == "VmStk:\t     132 kB"
    assert "Threads:\t1" in text


def test_peaks_are_refreshed_before_a_decrease() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 1 << 20, PROT_READ | PROT_WRITE, ANON)
    mm.write(a, 1 << 20)
    before = status_fields(mm)
    mm.sys_munmap(a, 1 << 20)
    after = status_fields(mm)
    assert after["VmPeak"] == before["VmSize"] and after["VmHWM"] == before["VmRSS"]
    assert after["VmSize"] == before["VmSize"] - 1024


def test_maps_line_format_names_at_column_73() -> None:
    mm = new_mm()
    lines = str(maps(mm)).splitlines()
    stack = next(x for x in lines if x.endswith("[stack]"))
    assert stack == "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0" + " " * 26 + "[stack]"
    for x in lines:
        if x.endswith("]") or "/" in x:
            name = x.split()[-1]
            assert x.index(name) == 73, x
    anon = [x for x in lines if x.split()[-1] == "0"]
    assert anon and all(x.endswith(" 0 ") for x in anon)      # unnamed: trailing space
    libc = next(x for x in lines if x.endswith("libc.so.6") and " r-xp " in x)
    assert libc.split()[2] == "00026000"                      # file offset
    assert lines[-1].startswith("ffffffffff600000-ffffffffff601000 --xp")


def test_heap_and_stack_names_follow_brk_and_start_stack() -> None:
    mm = new_mm()
    b0 = mm.sys_brk(0)
    assert not any(e.name == "[heap]" for e in maps(mm))
    mm.sys_brk(b0 + 1)
    (h,) = [e for e in maps(mm) if e.name == "[heap]"]
    assert (h.start, h.end) == (b0, b0 + P)
    # a mapping placed where the heap would be, with no heap yet, is not [heap]
    mm.sys_brk(b0)
    mm.sys_mmap(b0 + 0x100000, P, PROT_READ, ANON | MAP_FIXED)
    assert not any(e.name == "[heap]" for e in maps(mm))


def test_parse_maps_round_trip() -> None:
    mm = new_mm()
    entries = maps(mm)
    parsed = parse_maps(str(entries))
    assert [(e.start, e.end, e.perms, e.name) for e in entries] == parsed


def test_smaps_block_figures_and_flags() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0x200000000, 8 * P, PROT_READ | PROT_WRITE, ANON)
    mm.write(a, 3 * P)
    mm.read(a + 4 * P)
    text = str(smaps(mm))
    assert text.startswith("200000000-200008000 rw-p 00000000 00:00 0 \nSize:")
    block = text.split("\n5555")[0]
    assert "\nRss:                  12 kB" in block
    assert "\nAnonymous:            12 kB" in block
    assert "\nSize:                 32 kB" in block
    assert "\nVmFlags: rd wr mr mw me ac \n" in block + "\n"
    e = next(e for e in smaps(mm) if e.start == a)
    assert (e.rss_anon, e.rss_file, e.swap) == (3, 0, 0)
    stack = next(e for e in smaps(mm) if e.name == "[stack]")
    assert "gd ac" in stack.smaps()


def test_statm_is_status_in_pages() -> None:
    mm = new_mm()
    f = status_fields(mm)
    size, resident, shared, text, lib, data, dt = (int(x) for x in statm(mm).split())
    assert size * 4 == f["VmSize"] and resident * 4 == f["VmRSS"]
    assert shared * 4 == f["RssFile"] + f["RssShmem"] and text * 4 == f["VmExe"]
    assert data * 4 == f["VmData"] + f["VmStk"] and lib == dt == 0

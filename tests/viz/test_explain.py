"""memsim.viz.explain: each story is told from what the simulation did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsim.cli import main
from memsim.units import PAGE_SIZE
from memsim.viz.explain import CallStory, explain

from .helpers import trace


def stories(*lines: str, **kw: object) -> list[CallStory]:
    return list(explain(trace(*lines), **kw))  # type: ignore[arg-type]


def test_first_malloc_extends_the_heap_with_brk_and_nothing_faults_until_written() -> None:
    (s,) = stories("m 100 A")
    assert s.path == "sysmalloc brk"
    names = [e.name for e in s.syscalls]
    assert names == ["brk", "brk"]
    query, grow = s.syscalls
    assert query.args == (0,) and query.result == query.brk_before
    assert grow.result == grow.args[0] and grow.brk_after > grow.brk_before
    # the kernel maps whole pages: the [heap] VMA ends at the page-aligned break
    assert grow.vma_before is None and grow.vma_after is not None
    assert grow.vma_after[1] == (grow.brk_after + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    assert grow.anon_after == grow.anon_before          # 0 pages faulted by brk itself
    assert "tcache_init" in s.text and "sysmalloc" in s.text
    assert "brk(" in s.text and "lazily" in s.text and "0 pages faulted" in s.text
    assert f"{grow.vma_after[1]:#x}" in s.text
    # the faults came from stores, and they are all of the RssAnon growth
    frames = sum(w.new_frames for w in s.writes)
    assert frames > 0 and s.rss_delta_kb == frames * PAGE_SIZE // 1024


def test_a_tcache_hit_says_tcache_and_makes_no_syscall() -> None:
    s = stories("m 100 A", "f A", "m 100 B")
    assert [x.path for x in s] == ["sysmalloc brk", "tcache put", "tcache hit"]
    assert "tcache" in s[2].text and not s[2].syscalls
    assert "No system call" in s[2].text


def test_fastbin_after_the_tcache_bin_is_full() -> None:
    n = 8
    lines = [f"m 24 X{chr(65 + i)}" for i in range(n)] + ["m 2000 G"]
    lines += [f"f X{chr(65 + i)}" for i in range(n)]
    lines += [f"m 24 Y{chr(65 + i)}" for i in range(n)]
    s = stories(*lines)
    frees = s[n + 1: 2 * n + 1]
    assert [x.path for x in frees] == ["tcache put"] * 7 + ["fastbin"]
    assert "full" in frees[-1].text
    again = s[2 * n + 1:]
    assert [x.path for x in again] == ["tcache hit"] * 7 + ["fastbin"]


def test_unsorted_exact_split_and_merge_into_top() -> None:
    s = stories("m 2000 A", "m 100 G", "f A", "m 2000 B", "f B", "m 100 C", "f G", "m 3000 D",
                "f D")
    assert s[2].path == "unsorted"
    assert s[3].path == "unsorted exact"
    assert s[5].path.startswith("split from")
    assert "remainder" in s[5].text and "unsorted bin" in s[5].text
    assert s[8].path == "merged into top"


def test_mmap_and_munmap_tell_the_kernel_side() -> None:
    s = stories("m 100 Z", "m 1048576 A", "f A")[1:]
    assert s[0].path == "mmap" and [e.name for e in s[0].syscalls] == ["mmap"]
    assert "mmap_threshold" in s[0].text and "nothing is resident" in s[0].text
    assert s[1].path == "munmap" and [e.name for e in s[1].syscalls] == ["munmap"]
    assert s[1].rss_delta_kb == -s[0].rss_delta_kb     # what was faulted in goes away


def test_rss_deltas_add_up_to_faults_and_syscalls() -> None:
    lines = ["m 100 A", "m 200000 B", "c 10 100 C", "r A 5000 A2", "f B", "m 70000 D", "f C",
             "f D", "f A2"]
    s = stories(*lines)
    for x in s:
        pages = sum(w.new_frames for w in x.writes) + sum(e.anon_after - e.anon_before
                                                           for e in x.syscalls)
        assert x.rss_delta_kb == pages * PAGE_SIZE // 1024, x.call
    for a, b in zip(s, s[1:], strict=False):
        assert a.rss_anon_kb_after == b.rss_anon_kb_before


def test_a_window_tells_the_same_story_as_the_whole_run() -> None:
    lines = ["m 100 A", "f A", "m 100 B", "m 5000 C", "f C", "m 40 D", "f B", "f D"]
    whole = stories(*lines)
    window = stories(*lines, start=3, end=6)
    assert [w.index for w in window] == [3, 4, 5, 6]
    assert [w.as_dict() for w in window] == [w.as_dict() for w in whole[2:6]]


def test_no_touch_faults_only_the_allocator_stores() -> None:
    _, s = stories("m 100 A", "m 1048576 B", touch=False)
    assert all(w.by == "allocator" for w in s.writes)
    assert s.rss_delta_kb == PAGE_SIZE // 1024        # the chunk header's page only


def test_json_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.trace"
    path.write_bytes(trace("m 100 A", "f A", "m 300000 B", "f B").getvalue())
    assert main(["explain", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["index"] for c in doc["calls"]] == [1, 2, 3, 4]
    for c in doc["calls"]:
        assert set(c) == {"index", "line", "op", "args", "result", "call", "path",
                          "allocator", "syscalls", "faults", "rss_anon_kb_before",
                          "rss_anon_kb_after", "rss_delta_kb", "text"}
        assert c["op"] in ("malloc", "free")
        assert isinstance(c["text"], str) and c["text"]
        assert set(c["faults"]) == {"page_faults", "new_frames", "zero_pages",
                                    "page_table_bytes", "writes"}
        for e in c["syscalls"]:
            assert e["strace"].startswith(e["name"] + "(")
    assert [c["path"] for c in doc["calls"]] == ["sysmalloc brk", "tcache put", "mmap",
                                                 "munmap"]


def test_cli_plain_window_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    path = tmp_path / "t.trace"
    path.write_bytes(trace("m 100 A", "f A", "m 100 B").getvalue())
    assert main(["explain", str(path), "--from", "2", "--to", "3", "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#2 free(") and "#3 malloc(100)" in out and "#1 " not in out
    assert main(["explain", str(path), "--from", "3", "--to", "2"]) == 2
    assert "before --from" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "missing.trace")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.trace" in err


# --- the labels agree with the code path the model executed ---------------------------------

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def _hooked_create(events: list[str]):  # type: ignore[no-untyped-def]
    """memsim.alloc.create, with the glibc model's inner functions wrapped to log calls."""
    from memsim.alloc.base import create

    def make(name, syscalls, options=None):  # type: ignore[no-untyped-def]
        alloc = create(name, syscalls, options)

        def wrap(attr: str, tag: object) -> None:
            inner = getattr(alloc, attr)

            def hooked(*args, **kw):  # type: ignore[no-untyped-def]
                r = inner(*args, **kw)
                events.append(tag(args, r) if callable(tag) else tag)  # type: ignore[arg-type]
                return r
            setattr(alloc, attr, hooked)

        wrap("_int_malloc", "int_malloc")
        wrap("_sysmalloc_mmap", lambda a, r: "mmap" if r else "mmap-failed")
        wrap("sysmalloc", "sysmalloc")
        wrap("_split_free", lambda a, r: "split" if a[2] - a[3] >= 32 else "whole")
        wrap("_int_free_chunk", "int_free_chunk")
        wrap("_merge_chunk", "merge")
        wrap("munmap_chunk", "munmap")
        return alloc
    return make


@pytest.mark.parametrize("program", ["ls", "git", "perl"])
def test_labels_match_the_models_code_path(program: str, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    path = CORPUS / f"{program}.trace.zst"
    if not path.exists():
        pytest.skip(f"{path} is not in the corpus")
    events: list[str] = []
    monkeypatch.setattr("memsim.viz.explain.create", _hooked_create(events))
    seen: set[str] = set()
    it = explain(path, 1, 2500)
    while True:
        events.clear()
        try:
            s = next(it)
        except StopIteration:
            break
        label = s.path
        seen.add(label.split(" (")[0].split(" 0x")[0])
        if s.op == "m" and s.index > 1:
            assert (label == "tcache hit") == ("int_malloc" not in events), (s.index, label)
            assert (label == "mmap") == ("mmap" in events), (s.index, label)
            if label == "sysmalloc brk":
                assert "sysmalloc" in events
            if label.startswith("split from") and "last remainder" not in label \
                    and "consolidated" not in label:
                assert "split" in events, (s.index, label, events)
            if "split" in events:
                assert label.startswith("split from"), (s.index, label, events)
        if s.op == "f" and s.args[0]:
            if label == "tcache put":
                assert "int_free_chunk" not in events and "munmap" not in events
            elif label == "munmap":
                assert events == ["munmap"]
            elif label == "fastbin":
                assert "int_free_chunk" in events and "merge" not in events
            else:
                assert label in ("unsorted", "merged into top"), label
                assert "merge" in events
    assert {"tcache hit", "tcache put"} <= seen


def test_rich_output_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.trace"
    path.write_bytes(trace("m 100 A", "f A", "m 3000 B", "m 10 C", "f B").getvalue())
    monkeypatch.setattr("memsim.cli._common.stdout_is_terminal", lambda stream=None: True)
    assert main(["explain", str(path), "--to", "2"]) == 0
    out = capsys.readouterr().out
    assert "legend: allocator  kernel  pages  rss" in out and "[tcache put]" in out
    assert main(["view", str(path)]) == 0
    out = capsys.readouterr().out
    assert "unsortedbin" in out and "[heap]" in out and "legend: image" in out


def test_memalign_tells_the_lead_and_tail() -> None:
    s = stories("m 100 A", "a 4096 100 B", "v 100 C")
    assert s[1].path == "aligned from top" and s[1].result % 4096 == 0
    assert "misaligned lead" in s[1].text and "_int_memalign" in s[1].text
    assert s[2].result % 4096 == 0 and s[2].path.startswith("aligned from")

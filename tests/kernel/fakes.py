"""Test doubles for the page layer: the smallest owner a PageTable accepts."""

from __future__ import annotations

from memsim.kernel.machine import Machine
from memsim.kernel.pagetable import PageTable

TOP = 1 << 47


class FakeTask:
    """The smallest owner the page layer accepts: pid, oom_score_adj, oom_kill."""

    def __init__(self, machine: Machine, pid: int, adj: int = 0) -> None:
        self.pid = pid
        self.oom_score_adj = adj
        self.machine = machine
        self.killed = False
        self.pt: PageTable = machine.new_page_table(self)

    def oom_kill(self) -> None:
        self.pt.zap(0, TOP)
        self.pt.free_pgtables(0, TOP, 0, 0)
        self.machine.release_page_table(self.pt)
        self.killed = True

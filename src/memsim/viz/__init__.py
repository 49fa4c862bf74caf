"""Pictures and stories of one simulation: nothing here draws what the model did not do.

- :mod:`memsim.viz.explain`: each call's story across the layers (allocator path, syscalls,
  page faults, RSS), as text and as JSON records.
- :mod:`memsim.viz.heapstrip`: the heap as a strip of chunks (in use, free by bin, top).
- :mod:`memsim.viz.bins`: the bins as pwndbg's ``bins`` command shows them.
- :mod:`memsim.viz.maps`: the address space as /proc/PID/maps, with sizes and RSS per VMA.
- :mod:`memsim.viz.shell`: the interpreter behind ``memsim shell``.
"""

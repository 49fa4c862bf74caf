"""realloc and memalign of glibc 2.36: ``_int_realloc`` (malloc.c L4812) and ``_int_memalign``
(L4936), as a mixin over :class:`~memsim.alloc.glibc.malloc.Ptmalloc`.

``_int_realloc(av, p, oldsize, nb)``, for a chunk that is not mmapped::

    oldsize >= nb                      -> shrink in place
    next is top and fits nb + MINSIZE  -> grow into top (top moves up), done
    next is free and oldsize+next >= nb-> absorb next (unlink it)
    otherwise                          -> _int_malloc(nb - 15) (never the tcache), copy,
                                          _int_free the old chunk
    then split: a tail >= MINSIZE is handed to _int_free (tcache, fastbin or coalesce)

``_int_memalign(av, alignment, bytes)`` over-allocates ``nb + alignment + MINSIZE`` bytes,
then gives back the leader (the bytes before the first aligned chunk address at least
MINSIZE in) and the trailer (beyond nb + MINSIZE) through _int_free::

    m = _int_malloc(...)   | leader (freed) | aligned chunk nb | trailer (freed) |
                           p                newp               newp+nb

Mmapped chunks are never split: only their prev_size offset moves.
"""

from __future__ import annotations

from memsim.alloc.glibc.chunk import MINSIZE, SIZE_MAX, checked_request2size
from memsim.alloc.glibc.malloc import Ptmalloc
from memsim.alloc.glibc.state import MallocState
from memsim.kernel.abi import ENOMEM


class ReallocMemalign(Ptmalloc):
    """``_int_realloc`` and ``_int_memalign``."""

    def _int_realloc(self, av: MallocState, p: int, oldsize: int, nb: int) -> int:
        """``_int_realloc`` (L4812): resize in-use chunk ``p`` (still recorded in av.inuse by the
        caller) to ``nb``; returns mem, or 0 (the old chunk is then left untouched)."""
        w = self.w
        nxt = p + oldsize
        if oldsize >= nb:
            newp, newsize = p, oldsize
        elif nxt == av.top and oldsize + av.top_size >= nb + MINSIZE:
            av.top_size = oldsize + av.top_size - nb       # grow into top, no split step
            av.top = p + nb
            w(p + 8, 8)
            w(p + nb + 8, 8)
            av.inuse[p] = nb
            return p + 16
        elif nxt != av.top and nxt in av.free and oldsize + av.free[nxt] >= nb:
            newp, newsize = p, oldsize + av.unlink_chunk(nxt)
        else:
            av.inuse[p] = oldsize                          # still in use while we allocate
            newmem = self._int_malloc(av, nb - 15)
            if not newmem:
                return 0
            newp = newmem - 16
            if newp == nxt:                                # possible after a consolidation
                del av.inuse[p]
                newsize = oldsize + av.inuse.pop(newp)
                newp = p
            else:
                w(newmem, oldsize - 8)                     # memcpy of the old contents
                del av.inuse[p]
                self._int_free(av, p, oldsize)
                return newmem
        r = newsize - nb
        if r < MINSIZE:
            w(newp + 8, 8)
            w(newp + newsize + 8, 8)                       # set_inuse_bit_at_offset
            av.inuse[newp] = newsize
        else:
            rem = newp + nb
            w(newp + 8, 8)
            w(rem + 8, 8)
            w(rem + r + 8, 8)
            av.inuse[newp] = nb
            self._int_free(av, rem, r)
        return newp + 16

    def _int_memalign(self, av: MallocState, alignment: int, nbytes: int) -> int:
        """``_int_memalign`` (L4936): mem aligned to ``alignment`` (a power of two >= 32)."""
        nb = checked_request2size(nbytes)
        if nb == 0 or nb > SIZE_MAX - alignment - MINSIZE:
            self.errno = ENOMEM
            return 0
        m = self._int_malloc(av, nb + alignment + MINSIZE)
        if not m:
            return 0
        p = m - 16
        w = self.w
        mmapped = self.mmapped
        if m % alignment:
            newp = ((m + alignment - 1) & -alignment) - 16
            if newp - p < MINSIZE:
                newp += alignment
            leadsize = newp - p
            if p in mmapped:
                offset, size = mmapped.pop(p)
                mmapped[newp] = (offset + leadsize, size - leadsize)
                w(newp, 16)
                return newp + 16
            newsize = av.inuse.pop(p) - leadsize
            w(newp + 8, 8)
            w(newp + newsize + 8, 8)
            w(p + 8, 8)
            av.inuse[newp] = newsize
            self._int_free(av, p, leadsize)
            p = newp
        if p not in mmapped:
            size = av.inuse[p]
            if size > nb + MINSIZE:
                rem = p + nb
                w(rem + 8, 8)
                w(p + 8, 8)
                av.inuse[p] = nb
                self._int_free(av, rem, size - nb)
        return p + 16

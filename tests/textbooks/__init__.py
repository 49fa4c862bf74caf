"""Tests of memsim's textbook models: CS:APP (csapp-*, malloclab) and OSTEP (ostep)."""

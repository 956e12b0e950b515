"""Kubernetes resource quantities ("500m", "2", "16Gi", "10G") as numbers."""

from __future__ import annotations

import functools
import re

_CPU = re.compile(r"^(\d+(\.\d+)?)(m?)$")
_MEM = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T|k)?$")
_MEM_FACTORS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


# A spec repeats a handful of quantities on every node (10,000-node fleets parse 500,000 of them): memoised.
@functools.lru_cache(maxsize=512)
def parse_cpu(value: str) -> float:
    """CPU cores from a quantity: '500m' -> 0.5, '2' -> 2.0."""
    m = _CPU.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a CPU quantity (like '500m' or '2')")
    number = float(m.group(1))
    return number / 1000 if m.group(3) else number


@functools.lru_cache(maxsize=512)
def parse_memory(value: str) -> int:
    """Bytes from a quantity: '16Gi' -> 17179869184, '10G' -> 10**10."""
    m = _MEM.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a memory quantity (like '512Mi' or '16Gi')")
    return int(float(m.group(1)) * _MEM_FACTORS[m.group(3)])

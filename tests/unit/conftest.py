"""Make the collection importable as ansible_collections.swiftlinux.deploy for unit tests.

`make bootstrap` links the repository at .build/collections/ansible_collections/swiftlinux/deploy,
the same path ansible.cfg gives ansible, so unit tests import exactly what modules import.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / ".build" / "collections"

if not (COLLECTIONS / "ansible_collections" / "swiftlinux" / "deploy" / "plugins").is_dir():
    pytest.exit(f"{COLLECTIONS}/ansible_collections/swiftlinux/deploy is missing; run `make bootstrap` to link the collection.",
                returncode=4)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

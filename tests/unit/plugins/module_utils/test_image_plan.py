"""Unit tests for _image_plan's library resolution: the shared resolver (_resolve) reading only link facts."""
from __future__ import annotations

import os

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _image_plan as plans
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import elf_facts, link_facts
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import OciError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._resolve import Facts, resolve_elf

PROGRAM = "/usr/bin/python3"  # a dynamic program every test machine has (it runs these tests)


def test_link_facts_are_the_loaders_part_of_elf_facts():
    real = os.path.realpath(PROGRAM)
    full, light = elf_facts(real), link_facts(real)
    assert set(light) == {"path", "machine", "elf_class", "endianness", "interpreter", "needed", "rpath", "runpath",
                          "soname"}
    assert light == {key: full[key] for key in light}


def test_the_image_resolver_finds_what_the_bag_resolver_finds():
    expected = resolve_elf(PROGRAM, Facts()).found
    assert plans.resolve_libraries([PROGRAM]) == expected
    assert "libc.so.6" in expected


def test_a_missing_library_is_one_sentence_naming_who_needs_it(tmp_path):
    needy = tmp_path / "needy"
    needy.write_bytes(open(os.path.realpath(PROGRAM), "rb").read())
    # Rename one DT_NEEDED string in place (same length), so the loader would look for a library nobody has.
    data = needy.read_bytes().replace(b"libc.so.6\0", b"libq.so.6\0", 1)
    needy.write_bytes(data)
    with pytest.raises(OciError, match=r"needs libq\.so\.6, which is not installed on this build host"):
        plans.resolve_libraries([str(needy)])

"""Pins on real bpffs that another user prepared or swapped: xdp_attach,
the list maps' opener and bpf_map_entry refuse them and write nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.module_utils import _bpf, _facts, _pins
from plugins.module_utils._errors import FastpathError
from tests.integration.ansible_run import run_module
from tests.integration.conftest import ip

NOBODY = 65534


def xdp(ifname: str) -> dict[str, Any] | None:
    out = ip("-json", "link", "show", "dev", ifname).stdout
    return _facts.attached_program(json.loads(out)[0])


def keys(pin: Path) -> list[bytes]:
    with _bpf.Map.open_pinned(str(pin)) as m:
        return m.keys()


def attach(veth: str, pin_dir: Path, obj: Path,
           tmp_path: Path) -> dict[str, Any]:
    return run_module("vos.fastpath.xdp_attach", {
        "interface": veth, "object": str(obj), "pin_dir": str(pin_dir)},
        tmp_path)


def swap(pin_dir: Path, a: str, b: str) -> None:
    """What a user who may write the pin directory can do: two renames."""
    os.rename(pin_dir / a, pin_dir / "swap_tmp")
    os.rename(pin_dir / b, pin_dir / a)
    os.rename(pin_dir / "swap_tmp", pin_dir / b)


@pytest.fixture
def prepared(pin_dir: Path) -> Iterator[Path]:
    """The pin directory as an unprivileged user leaves it in advance."""
    os.chmod(pin_dir, 0o777)
    os.chown(pin_dir, NOBODY, NOBODY)
    yield pin_dir


def test_a_pin_directory_prepared_by_a_user_is_refused_by_xdp_attach(
        veth: str, prepared: Path, built_object: Path,
        tmp_path: Path) -> None:
    result = attach(veth, prepared, built_object, tmp_path)
    assert result["failed"] is True
    assert result["msg"] == (
        "The pin directory %s is owned by uid 65534 and mode 0777: remove it "
        "(rm -r %s) and run again; the pin directory must belong to root "
        "and be writable only by it." % (prepared, prepared))
    assert xdp(veth) is None
    assert os.listdir(prepared) == []
    st = os.lstat(prepared)
    assert (st.st_uid, st.st_mode & 0o7777) == (NOBODY, 0o777)


def test_a_pin_directory_prepared_by_a_user_is_refused_by_the_opener(
        prepared: Path) -> None:
    with pytest.raises(FastpathError) as err:
        _pins.open_list_maps(str(prepared), "blocklist")
    assert err.value.msg.startswith(
        "The pin directory %s is owned by uid 65534 and mode 0777:"
        % prepared)


def test_xdp_attach_makes_the_pin_directory_for_root_alone(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    pin_dir.rmdir()
    first = attach(veth, pin_dir, built_object, tmp_path)
    assert first["changed"] is True, first
    st = os.lstat(pin_dir)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)
    maps = _pins.open_list_maps(str(pin_dir), "allowlist")
    assert [m.name for m in maps] == ["allow_v4", "allow_v6"]
    for m in maps:
        m.close()


def test_swapped_list_pins_are_refused_and_nothing_is_written(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    assert attach(veth, pin_dir, built_object, tmp_path)["changed"] is True
    swap(pin_dir, "block_v4", "allow_v4")

    with pytest.raises(FastpathError) as err:
        _pins.open_list_maps(str(pin_dir), "blocklist")
    assert err.value.msg == (
        "The pin %s/block_v4 holds map allow_v4 (LPM_TRIE, key 8, value 16), "
        "not block_v4: the pin directory has been tampered with or belongs "
        "to another program; remove it and deploy again." % pin_dir)
    with pytest.raises(FastpathError) as err:
        _pins.open_list_maps(str(pin_dir), "allowlist")
    assert "holds map block_v4 (LPM_TRIE, key 8, value 16), not allow_v4:" \
        in err.value.msg

    # What block.yml does: the attacker's address is not allowlisted.
    result = run_module("vos.fastpath.bpf_map_entry", {
        "map": "blocklist", "pin_dir": str(pin_dir),
        "entries": ["203.0.113.7"], "source": "manual"}, tmp_path)
    assert result["failed"] is True
    assert "holds map allow_v4" in result["msg"]
    for name in ("block_v4", "allow_v4", "block_v6", "allow_v6"):
        assert keys(pin_dir / name) == [], name

    again = attach(veth, pin_dir, built_object, tmp_path)
    assert again["failed"] is True
    assert "name allow_v4 (the program needs block_v4)" in again["msg"]


def test_swapped_counter_pins_are_refused_by_xdp_stats(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    assert attach(veth, pin_dir, built_object, tmp_path)["changed"] is True
    swap(pin_dir, "stats", "proto_stats")
    result = run_module("vos.fastpath.xdp_stats", {"pin_dir": str(pin_dir)},
                        tmp_path)
    assert result["failed"] is True
    assert result["msg"] == (
        "The pin %s/stats holds map proto_stats (PERCPU_ARRAY, key 4, value "
        "16), not stats: the pin directory has been tampered with or belongs "
        "to another program; remove it and deploy again." % pin_dir)

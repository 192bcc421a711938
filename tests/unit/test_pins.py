"""_pins without the kernel: which pin and state directories are trusted,
which pins and maps are, and the sentence for each refusal. The maps are
stand-ins with the attributes of _bpf.Map; the directories are real, in
tmp_path, with owners and modes set as an attacker would."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from plugins.module_utils import _abi, _bpf, _current, _facts, _host, _pins
from plugins.module_utils._errors import FastpathError

NOBODY = 65534


def one_sentence(msg: str) -> bool:
    """Ends with a full stop, and no other sentence starts inside."""
    return msg.endswith(".") and re.search(r"[.:;]\s+[A-Z]", msg) is None


def refusal(path: Path, what: str = _pins.PIN_DIR) -> str:
    with pytest.raises(FastpathError) as err:
        _pins.check_private_dir(str(path), what)
    assert one_sentence(err.value.msg), err.value.msg
    return err.value.msg


def private(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(mode=mode)
    path.chmod(mode)
    return path


# check_private_dir


def test_a_directory_of_root_alone_is_accepted(tmp_path: Path) -> None:
    _pins.check_private_dir(str(private(tmp_path / "pins")), _pins.PIN_DIR)
    _pins.check_private_dir(str(private(tmp_path / "ro", 0o755)),
                            _pins.PIN_DIR)


def test_a_directory_made_by_another_user_is_refused(
        tmp_path: Path, root_required: None) -> None:
    pins = private(tmp_path / "pins", 0o777)
    os.chown(pins, NOBODY, NOBODY)
    assert refusal(pins) == (
        "The pin directory %s is owned by uid 65534 and mode 0777: remove "
        "it (rm -r %s) and run again; the pin directory must belong to "
        "root and be writable only by it." % (pins, pins))


def test_another_owner_is_refused_even_with_a_private_mode(
        tmp_path: Path, root_required: None) -> None:
    pins = private(tmp_path / "pins")
    os.chown(pins, NOBODY, 0)
    assert "is owned by uid 65534 and mode 0700:" in refusal(pins)


@pytest.mark.parametrize("mode", [0o770, 0o757, 0o777, 0o1777, 0o730])
def test_a_directory_others_may_write_is_refused(tmp_path: Path,
                                                 mode: int) -> None:
    pins = private(tmp_path / "pins", mode)
    assert "and mode %04o:" % mode in refusal(pins)


def test_the_state_directory_is_told_to_check_its_content(
        tmp_path: Path) -> None:
    state = private(tmp_path / "state", 0o777)
    assert refusal(state, _pins.STATE_DIR) == (
        "The state directory %s is owned by uid %d and mode 0777: check "
        "what it holds, then make it root's (chown -R root:root %s; chmod "
        "0700 %s) or remove it (rm -r %s) and run again; the state "
        "directory must belong to root and be writable only by it."
        % (state, os.geteuid(), state, state, state))


def test_a_symbolic_link_to_a_good_directory_is_refused(
        tmp_path: Path) -> None:
    target = private(tmp_path / "target")
    link = tmp_path / "pins"
    link.symlink_to(target)
    assert refusal(link) == (
        "The pin directory %s is a symbolic link: remove it (rm %s) and run "
        "again; the pin directory must be a directory that belongs to root "
        "and is writable only by it." % (link, link))


def test_a_symbolic_link_written_with_a_trailing_slash_is_refused(
        tmp_path: Path) -> None:
    link = tmp_path / "pins"
    link.symlink_to(private(tmp_path / "target"))
    with pytest.raises(FastpathError) as err:
        _pins.check_private_dir(str(link) + "/", _pins.PIN_DIR)
    assert "is a symbolic link:" in err.value.msg


def test_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pins"
    path.write_text("")
    assert refusal(path).startswith(
        "The pin directory %s is not a directory: remove it" % path)


def test_a_missing_directory_is_one_sentence(tmp_path: Path) -> None:
    assert refusal(tmp_path / "gone") == (
        "Could not look at the pin directory %s (No such file or "
        "directory): run as root and check the path." % (tmp_path / "gone"))


def test_a_parent_others_may_write_is_refused(tmp_path: Path) -> None:
    """Whoever may write the parent can rename the checked directory away
    and put their own in its place."""
    parent = private(tmp_path / "open", 0o777)
    pins = private(parent / "pins")
    assert refusal(pins) == (
        "The directory %s above the pin directory %s is owned by uid %d and "
        "mode 0777: make it belong to root and writable only by it (or give "
        "it the sticky bit), or choose another pin directory."
        % (parent, pins, os.geteuid()))


def test_a_sticky_parent_of_root_is_accepted(tmp_path: Path,
                                             root_required: None) -> None:
    """As /sys/fs/bpf (1777): only root may rename root's entries there."""
    parent = private(tmp_path / "bpffs", 0o1777)
    _pins.check_private_dir(str(private(parent / "pins")), _pins.PIN_DIR)


def test_a_sticky_parent_of_another_user_is_refused(
        tmp_path: Path, root_required: None) -> None:
    parent = private(tmp_path / "bpffs", 0o1777)
    os.chown(parent, NOBODY, NOBODY)
    pins = private(parent / "pins")
    assert "The directory %s above the pin directory %s is owned by uid " \
        "65534 and mode 1777:" % (parent, pins) in refusal(pins)


def test_a_parent_of_another_user_is_refused(tmp_path: Path,
                                             root_required: None) -> None:
    parent = private(tmp_path / "home", 0o755)
    os.chown(parent, NOBODY, NOBODY)
    pins = private(parent / "pins")
    assert "above the pin directory %s is owned by uid 65534 and mode " \
        "0755:" % pins in refusal(pins)


def test_a_parent_link_of_root_to_a_safe_place_is_followed(
        tmp_path: Path) -> None:
    real = private(tmp_path / "real")
    private(real / "pins")
    (tmp_path / "via").symlink_to(real)
    _pins.check_private_dir(str(tmp_path / "via" / "pins"), _pins.PIN_DIR)


def test_a_parent_link_to_an_unsafe_place_is_refused(
        tmp_path: Path) -> None:
    real = private(tmp_path / "real", 0o777)
    private(real / "pins")
    (tmp_path / "via").symlink_to(real)
    assert "The directory %s above the pin directory %s" % (
        real, tmp_path / "via" / "pins") in refusal(tmp_path / "via" / "pins")


def test_a_parent_link_of_another_user_is_refused(
        tmp_path: Path, root_required: None) -> None:
    real = private(tmp_path / "real")
    private(real / "pins")
    via = tmp_path / "via"
    via.symlink_to(real)
    os.lchown(via, NOBODY, NOBODY)
    assert "The directory %s above the pin directory %s is a symbolic link " \
        "owned by uid 65534:" % (via, via / "pins") in refusal(via / "pins")


# make_private_dir


def test_make_private_dir_creates_it_for_root_alone(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state"
    old = os.umask(0)
    try:
        _pins.make_private_dir(str(path), _pins.STATE_DIR)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o7777, path.stat().st_uid) == (
        0o700, os.geteuid())
    assert (tmp_path / "a" / "b").stat().st_mode & 0o7777 == 0o755
    _pins.make_private_dir(str(path), _pins.STATE_DIR)     # again: kept


def test_make_private_dir_refuses_one_made_in_advance(
        tmp_path: Path, root_required: None) -> None:
    path = private(tmp_path / "state", 0o777)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(FastpathError) as err:
        _pins.make_private_dir(str(path), _pins.STATE_DIR)
    assert "is owned by uid 65534 and mode 0777:" in err.value.msg
    assert path.stat().st_uid == NOBODY        # not taken over


# The maps behind the pins


class FakeMap:
    """What _pins reads of a _bpf.Map."""

    def __init__(self, name: str, spec: str | None = None,
                 **changes: int) -> None:
        layout = _abi.MAPS[spec or name]
        self.name = name
        self.map_type = layout.map_type
        self.key_size = layout.key_size
        self.value_size = layout.value_size
        self.max_entries = layout.max_entries
        self.flags = layout.flags
        for key, value in changes.items():
            setattr(self, key, value)
        self.closed = False
        self.id = 7

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.mark.parametrize("name", sorted(_abi.MAPS))
def test_every_map_of_the_contract_passes_as_itself(name: str) -> None:
    m = FakeMap(name)
    _pins.check_map(m, name, "/p/" + name)
    assert not m.closed


def test_every_map_of_the_contract_fails_as_any_other() -> None:
    """Swapping any two pins is found by name, and by layout too unless
    the two maps share one (stats, stats_ext and rate_limited: per-CPU
    arrays of 8 counters; the name still tells)."""
    same_layout = set()
    for have in _abi.MAPS:
        for want in _abi.MAPS:
            if have != want:
                assert _pins.map_problem(FakeMap(have), want, "/p") is not None
                renamed = FakeMap(want, spec=have)
                if _pins.map_problem(renamed, want, "/p") is None:
                    same_layout.add(frozenset((have, want)))
    assert same_layout == {frozenset(("stats", "stats_ext")),
                           frozenset(("stats", "rate_limited")),
                           frozenset(("stats_ext", "rate_limited"))}


def test_a_swapped_pin_is_refused_and_closed() -> None:
    m = FakeMap("allow_v4")
    with pytest.raises(FastpathError) as err:
        _pins.check_map(m, "block_v4", "/sys/fs/bpf/vos_fastpath/block_v4")
    assert err.value.msg == (
        "The pin /sys/fs/bpf/vos_fastpath/block_v4 holds map allow_v4 "
        "(LPM_TRIE, key 8, value 16), not block_v4: the pin directory has "
        "been tampered with or belongs to another program; remove it and "
        "deploy again.")
    assert one_sentence(err.value.msg)
    assert m.closed


@pytest.mark.parametrize("field, value", [
    ("map_type", 1), ("key_size", 20), ("value_size", 8),
    ("max_entries", 65536), ("flags", 0)])
def test_a_map_of_the_right_name_and_another_layout_is_refused(
        field: str, value: int) -> None:
    m = FakeMap("block_v4", **{field: value})
    with pytest.raises(FastpathError) as err:
        _pins.check_map(m, "block_v4", "/p/block_v4")
    assert err.value.msg.startswith(
        "The pin /p/block_v4 holds map block_v4 (")
    assert "not the block_v4 of docs/dataplane.md (LPM_TRIE, key 8, value " \
        "16, max_entries 2097152, flags 1): the pin directory has been " \
        "tampered with" in err.value.msg
    assert one_sentence(err.value.msg)
    assert m.closed


def pin(pin_dir: Path, name: str) -> Path:
    path = pin_dir / name
    path.write_text("")
    path.chmod(0o600)
    return path


def test_open_map_checks_the_map_behind_the_pin(tmp_path: Path) -> None:
    pin(tmp_path, "stats")
    good = FakeMap("stats")
    with mock.patch.object(_bpf.Map, "open_pinned",
                           return_value=good) as opened:
        assert _pins.open_map(str(tmp_path), "stats") is good
    opened.assert_called_once_with(str(tmp_path / "stats"))
    bad = FakeMap("proto_stats")
    with mock.patch.object(_bpf.Map, "open_pinned", return_value=bad), \
            pytest.raises(FastpathError) as err:
        _pins.open_map(str(tmp_path), "stats")
    assert "holds map proto_stats (PERCPU_ARRAY, key 4, value 16), not " \
        "stats:" in err.value.msg
    assert bad.closed


def test_open_map_without_the_pin_says_to_attach(tmp_path: Path) -> None:
    with pytest.raises(FastpathError) as err:
        _pins.open_map(str(tmp_path), "block_v4")
    assert err.value.msg == (
        "The map block_v4 is not pinned under %s: attach the program with "
        "vos.fastpath.xdp_attach first, or set pin_dir." % tmp_path)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_pin_others_may_write_is_refused(tmp_path: Path,
                                           mode: int) -> None:
    pin(tmp_path, "block_v4").chmod(mode)
    with mock.patch.object(_bpf.Map, "open_pinned") as opened, \
            pytest.raises(FastpathError) as err:
        _pins.open_map(str(tmp_path), "block_v4")
    assert err.value.msg == (
        "The pin %s/block_v4 is owned by uid %d and mode %04o: the pin "
        "directory has been tampered with; remove it (rm -r %s) and deploy "
        "again." % (tmp_path, os.geteuid(), mode, tmp_path))
    opened.assert_not_called()


def test_a_pin_of_another_user_is_refused(tmp_path: Path,
                                          root_required: None) -> None:
    os.chown(pin(tmp_path, "block_v4"), NOBODY, NOBODY)
    with mock.patch.object(_bpf.Map, "open_pinned") as opened, \
            pytest.raises(FastpathError) as err:
        _pins.open_map(str(tmp_path), "block_v4")
    assert "block_v4 is owned by uid 65534 and mode 0600:" in err.value.msg
    opened.assert_not_called()


def test_a_pin_that_is_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "block_v4").symlink_to(pin(tmp_path, "allow_v4"))
    with mock.patch.object(_bpf.Map, "open_pinned") as opened, \
            pytest.raises(FastpathError) as err:
        _pins.open_map(str(tmp_path), "block_v4")
    assert err.value.msg.startswith(
        "The pin %s/block_v4 is a symbolic link: the pin directory has been "
        "tampered with;" % tmp_path)
    opened.assert_not_called()


def test_a_pin_that_cannot_be_opened_is_one_sentence(tmp_path: Path) -> None:
    pin(tmp_path, "stats")
    failure = _bpf.BpfError(1, "open pinned object x: Operation not "
                               "permitted")
    with mock.patch.object(_bpf.Map, "open_pinned", side_effect=failure), \
            pytest.raises(FastpathError) as err:
        _pins.open_map(str(tmp_path), "stats")
    assert err.value.msg.startswith("The pin %s/stats cannot be opened as a "
                                    "map (" % tmp_path)
    assert one_sentence(err.value.msg)


# open_list_maps


def list_pins(tmp_path: Path, opened: dict[str, FakeMap]) -> Any:
    """A private pin directory with the list pins; open_pinned hands out
    `opened` by pin name."""
    pins = private(tmp_path / "pins")
    for name in opened:
        pin(pins, name)
    return pins, mock.patch.object(
        _bpf.Map, "open_pinned",
        side_effect=lambda path: opened[os.path.basename(path)])


def test_open_list_maps_opens_both_tries_of_a_list(tmp_path: Path) -> None:
    maps = {"allow_v4": FakeMap("allow_v4"), "allow_v6": FakeMap("allow_v6")}
    pins, patch = list_pins(tmp_path, maps)
    with patch, mock.patch.object(_facts, "bpffs_mount",
                                  return_value="/sys/fs/bpf"):
        got = _pins.open_list_maps(str(pins), "allowlist")
    assert [(f.trie, f.hosts) for f in got] == [
        (maps["allow_v4"], None), (maps["allow_v6"], None)]


def test_open_list_maps_opens_the_blocklist_hashes_where_pinned(
        tmp_path: Path) -> None:
    """Pinned next to the tries, the hashes of exact addresses are opened
    with them; a pin directory of a program older than the hashes has
    none, and its lists are its tries alone."""
    maps = dict((name, FakeMap(name)) for name in (
        "block_v4", "block_v6", "block_v4_hosts", "block_v6_hosts"))
    pins, patch = list_pins(tmp_path, maps)
    with patch, mock.patch.object(_facts, "bpffs_mount",
                                  return_value="/sys/fs/bpf"):
        got = _pins.open_list_maps(str(pins), "blocklist")
        assert [(f.trie, f.hosts) for f in got] == [
            (maps["block_v4"], maps["block_v4_hosts"]),
            (maps["block_v6"], maps["block_v6_hosts"])]
        for name in ("block_v4_hosts", "block_v6_hosts"):
            (pins / name).unlink()
        got = _pins.open_list_maps(str(pins), "blocklist")
        assert [(f.trie, f.hosts) for f in got] == [
            (maps["block_v4"], None), (maps["block_v6"], None)]


def test_open_list_maps_closes_the_first_when_the_second_is_wrong(
        tmp_path: Path) -> None:
    maps = {"block_v4": FakeMap("block_v4"),
            "block_v6": FakeMap("allow_v6")}
    pins, patch = list_pins(tmp_path, maps)
    with patch, mock.patch.object(_facts, "bpffs_mount",
                                  return_value="/sys/fs/bpf"), \
            pytest.raises(FastpathError) as err:
        _pins.open_list_maps(str(pins), "blocklist")
    assert "holds map allow_v6 (LPM_TRIE, key 20, value 16), not block_v6:" \
        in err.value.msg
    assert maps["block_v4"].closed and maps["block_v6"].closed


def test_open_list_maps_refuses_an_open_pin_directory(tmp_path: Path) -> None:
    maps = {"block_v4": FakeMap("block_v4"),
            "block_v6": FakeMap("block_v6")}
    pins, patch = list_pins(tmp_path, maps)
    pins.chmod(0o777)
    with patch as opened, mock.patch.object(_facts, "bpffs_mount",
                                            return_value="/sys/fs/bpf"), \
            pytest.raises(FastpathError) as err:
        _pins.open_list_maps(str(pins), "blocklist")
    assert err.value.msg.startswith("The pin directory %s is owned by" % pins)
    opened.assert_not_called()


def test_open_list_maps_off_bpffs_and_without_pins(tmp_path: Path) -> None:
    with mock.patch.object(_facts, "bpffs_mount", return_value=None), \
            pytest.raises(FastpathError) as err:
        _pins.open_list_maps(str(tmp_path), "blocklist")
    assert err.value.msg == _facts.NOT_ON_BPFFS % tmp_path
    with mock.patch.object(_facts, "bpffs_mount",
                           return_value="/sys/fs/bpf"), \
            pytest.raises(FastpathError) as err:
        _pins.open_list_maps(str(tmp_path / "gone"), "blocklist")
    assert err.value.msg == _pins.NOTHING_PINNED % (tmp_path / "gone")


# xdp_attach: the pin directory it finds, and the one it makes


class ReadHost:
    """The reads of _host.Host that read_current makes, for an interface
    with nothing attached (any other read finds nothing);
    check_private_dir refuses what `refuse` says."""

    def __init__(self, exists: bool, refuse: FastpathError | None = None
                 ) -> None:
        self.pin_dir_exists = exists
        self.refuse = refuse
        self.calls: list[str] = []

    def link(self, ifname: str) -> dict:
        return {"ifname": ifname}

    def exists(self, path: str) -> bool:
        return self.pin_dir_exists

    def check_private_dir(self, path: str) -> None:
        self.calls.append("check_private_dir")
        if self.refuse:
            raise self.refuse

    def map_layouts(self, pin_dir: str) -> dict:
        self.calls.append("map_layouts")
        return {}

    def pinned_link(self, path: str) -> None:
        self.calls.append("pinned_link")

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_read_current_checks_a_pin_directory_before_reading_it() -> None:
    host = ReadHost(exists=True)
    _current.read_current(host, "eth0", "/sys/fs/bpf/p", "sip_xdp_prog")
    assert host.calls == ["check_private_dir", "pinned_link", "map_layouts"]
    refused = ReadHost(exists=True, refuse=FastpathError("refused."))
    with pytest.raises(FastpathError):
        _current.read_current(refused, "eth0", "/sys/fs/bpf/p",
                              "sip_xdp_prog")
    assert refused.calls == ["check_private_dir"]
    missing = ReadHost(exists=False)
    _current.read_current(missing, "eth0", "/sys/fs/bpf/p", "sip_xdp_prog")
    assert "check_private_dir" not in missing.calls


def test_a_pinned_map_of_another_name_is_a_bad_pin() -> None:
    found = dict(_abi.map_layout(_abi.MAPS["block_v4"]), id=3,
                 name="evil_v4")
    msg = _current.layout_problem("block_v4", "/p/block_v4", found)
    assert "name evil_v4 (the program needs block_v4)" in msg


def host_without_module() -> _host.Host:
    return _host.Host.__new__(_host.Host)


def test_the_host_makes_the_pin_directory_for_root_alone(
        tmp_path: Path) -> None:
    pins = tmp_path / "pins"
    old = os.umask(0)
    try:
        host_without_module().make_dir(str(pins))
    finally:
        os.umask(old)
    assert pins.stat().st_mode & 0o7777 == 0o700
    with pytest.raises(FileExistsError):
        host_without_module().make_dir(str(pins))


def test_the_host_leaves_no_directory_under_an_unsafe_parent(
        tmp_path: Path) -> None:
    parent = private(tmp_path / "open", 0o777)
    with pytest.raises(FastpathError) as err:
        host_without_module().make_dir(str(parent / "pins"))
    assert err.value.msg.startswith("The directory %s above the pin "
                                    "directory" % parent)
    assert not (parent / "pins").exists()

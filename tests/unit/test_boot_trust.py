"""What the boot command, run by root at boot, refuses to trust: a
configuration or state directory that another user may change, and any
interpreter but the system's Python."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from unittest import mock

import jinja2
import pytest
import yaml

from plugins.module_utils import _boot, _pins
from plugins.module_utils._errors import FastpathError

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "fastpath"
NOBODY = 65534
CONFIG = {"object": "/var/lib/vos-fastpath/sip_logic.bpf.o",
          "pin_dir": "/sys/fs/bpf/vos_fastpath", "interfaces": ["eth0"]}


def one_sentence(msg: str) -> bool:
    return msg.endswith(".") and re.search(r"[.:;]\s+[A-Z]", msg) is None


def state_dir(tmp_path: Path, mode: int = 0o700) -> Path:
    path = tmp_path / "state"
    (path / "lists").mkdir(parents=True)
    path.chmod(mode)
    (path / "lists").chmod(0o700)
    return path


def config_in(state: Path, mode: int = 0o600) -> Path:
    path = state / "boot.json"
    path.write_text(json.dumps(dict(CONFIG, state_dir=str(state))))
    path.chmod(mode)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(FastpathError) as err:
        _boot.read_config(str(path))
    assert one_sentence(err.value.msg), err.value.msg
    return err.value.msg


# boot.json and its directory


def test_a_configuration_of_root_alone_is_read(tmp_path: Path) -> None:
    config = config_in(state_dir(tmp_path))
    assert _boot.read_config(str(config))["pin_dir"] == CONFIG["pin_dir"]


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_configuration_others_may_write_is_refused(tmp_path: Path,
                                                     mode: int) -> None:
    config = config_in(state_dir(tmp_path), mode)
    assert refusal(config) == (
        "The boot configuration %s is owned by uid %d and mode %04o: check "
        "what it holds, then deploy again to rewrite it; it must belong to "
        "root and be writable only by it." % (config, os.geteuid(), mode))


def test_a_configuration_of_another_user_is_refused(
        tmp_path: Path, root_required: None) -> None:
    config = config_in(state_dir(tmp_path))
    os.chown(config, NOBODY, NOBODY)
    assert "%s is owned by uid 65534 and mode 0600:" % config \
        in refusal(config)


def test_a_configuration_in_an_open_directory_is_refused(
        tmp_path: Path) -> None:
    state = state_dir(tmp_path, 0o777)
    assert refusal(config_in(state)).startswith(
        "The state directory %s is owned by uid %d and mode 0777: check "
        "what it holds" % (state, os.geteuid()))


def test_a_configuration_in_a_directory_of_another_user_is_refused(
        tmp_path: Path, root_required: None) -> None:
    state = state_dir(tmp_path)
    config = config_in(state)
    os.chown(state, NOBODY, NOBODY)
    assert "state directory %s is owned by uid 65534" % state \
        in refusal(config)


def test_a_configuration_that_is_a_symbolic_link_is_not_followed(
        tmp_path: Path) -> None:
    state = state_dir(tmp_path)
    real = config_in(state)
    link = state / "link.json"
    link.symlink_to(real)
    assert refusal(link) == (
        "Could not read %s (Too many levels of symbolic links): deploy with "
        "the vos.fastpath.fastpath role first." % link)


# The saved lists


def test_a_list_is_not_restored_from_an_open_state_directory(
        tmp_path: Path) -> None:
    state = state_dir(tmp_path, 0o757)
    with mock.patch.object(_pins, "open_list_maps") as opened, \
            pytest.raises(FastpathError) as err:
        _boot.restore_list(dict(CONFIG, state_dir=str(state)), "blocklist")
    assert str(err.value).startswith(
        "blocklist: The state directory %s is owned by uid %d and mode "
        "0757:" % (state, os.geteuid()))
    opened.assert_not_called()


def test_a_list_is_not_restored_from_an_open_lists_directory(
        tmp_path: Path) -> None:
    state = state_dir(tmp_path)
    (state / "lists").chmod(0o777)
    with mock.patch.object(_pins, "open_list_maps") as opened, \
            pytest.raises(FastpathError) as err:
        _boot.restore_list(dict(CONFIG, state_dir=str(state)), "allowlist")
    assert "The state directory %s is owned by" % (state / "lists") \
        in str(err.value)
    opened.assert_not_called()


def test_a_list_is_restored_into_maps_checked_by_pins(tmp_path: Path
                                                      ) -> None:
    state = state_dir(tmp_path)
    with mock.patch.object(_pins, "open_list_maps",
                           side_effect=FastpathError("refused.")) as opened, \
            pytest.raises(FastpathError) as err:
        _boot.restore_list(dict(CONFIG, state_dir=str(state)), "blocklist")
    opened.assert_called_once_with(CONFIG["pin_dir"], "blocklist")
    assert str(err.value) == "blocklist: refused."


# The interpreter


def role_vars() -> dict:
    return yaml.safe_load((ROLE / "vars" / "main.yml").read_text())


def test_the_boot_command_runs_with_the_systems_python_isolated() -> None:
    python = role_vars()["__fastpath_python"]
    assert python == "/usr/bin/python3"
    first = (ROLE / "templates" / "vos-fastpath-boot.j2").read_text() \
        .splitlines()[0]
    assert jinja2.Template(first).render(__fastpath_python=python) == \
        "#!/usr/bin/python3 -I"


def test_the_role_refuses_a_python_root_does_not_own_alone() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "boot.yml").read_text())
    names = [t["name"] for t in tasks]
    look = next(t for t in tasks if "ansible.builtin.stat" in t)
    assert look["ansible.builtin.stat"]["path"] == "{{ __fastpath_python }}"
    assert look["ansible.builtin.stat"]["follow"] is True
    check = next(t for t in tasks if "ansible.builtin.assert" in t)
    assert check["ansible.builtin.assert"]["that"] == [
        "__fastpath_python_stat.stat.exists",
        "__fastpath_python_stat.stat.uid == 0",
        "not __fastpath_python_stat.stat.wgrp",
        "not __fastpath_python_stat.stat.woth"]
    install = names.index("Install the boot command")
    assert tasks.index(look) < tasks.index(check) < install

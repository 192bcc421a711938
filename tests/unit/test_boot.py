"""vos-fastpath-boot without the kernel: its configuration, the stand-in
for AnsibleModule it hands to the attach code, and its exit status."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from plugins.module_utils import _abi, _boot, _defaults, _lock, _runner
from plugins.module_utils._errors import FastpathError
from plugins.modules import xdp_attach

CONFIG = {"object": "/var/lib/vos-fastpath/sip_logic.bpf.o",
          "pin_dir": "/sys/fs/bpf/vos_fastpath",
          "interfaces": ["eth0"]}


def one_sentence(msg: str) -> bool:
    """Ends with a full stop, and no other sentence starts inside."""
    return msg.endswith(".") and re.search(r"[.:]\s+[A-Z]", msg) is None


def config_file(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "boot.json"
    path.write_text(content)
    return path


# read_config


def test_read_config_returns_the_configuration(tmp_path: Path) -> None:
    config = dict(CONFIG, mode="generic", lists={"blocklist": "/x"})
    path = config_file(tmp_path, json.dumps(config))
    assert _boot.read_config(str(path)) == config


def test_missing_config_says_to_deploy_the_role(tmp_path: Path) -> None:
    path = tmp_path / "boot.json"
    with pytest.raises(FastpathError) as err:
        _boot.read_config(str(path))
    msg = str(err.value)
    assert msg == ("Could not read %s (No such file or directory): deploy "
                   "with the vos.fastpath.fastpath role first." % path)
    assert one_sentence(msg)


@pytest.mark.parametrize("content", ["", "{", '{"object": }', "not json"])
def test_bad_json_says_to_deploy_again(tmp_path: Path,
                                       content: str) -> None:
    path = config_file(tmp_path, content)
    with pytest.raises(FastpathError) as err:
        _boot.read_config(str(path))
    msg = str(err.value)
    assert msg.startswith("%s is not valid JSON (" % path)
    assert msg.endswith("): deploy again to rewrite it.")
    assert one_sentence(msg)


@pytest.mark.parametrize("missing", ["object", "pin_dir", "interfaces"])
def test_missing_key_is_named(tmp_path: Path, missing: str) -> None:
    config = dict(CONFIG)
    del config[missing]
    path = config_file(tmp_path, json.dumps(config))
    with pytest.raises(FastpathError) as err:
        _boot.read_config(str(path))
    msg = str(err.value)
    assert msg == ("%s has no '%s': deploy again to rewrite it."
                   % (path, missing))
    assert one_sentence(msg)


@pytest.mark.parametrize("content", ["null", "5", "[]",
                                     '"object pin_dir interfaces"'])
def test_json_that_is_not_an_object_is_refused(tmp_path: Path,
                                               content: str) -> None:
    path = config_file(tmp_path, content)
    with pytest.raises(FastpathError) as err:
        _boot.read_config(str(path))
    assert str(err.value).startswith(str(path))
    assert "deploy again to rewrite it." in str(err.value)


# attach_params


def test_attach_params_merge_settings_over_the_defaults() -> None:
    config = dict(CONFIG, mode="generic", sip_ports=[5060, 5080],
                  settings={"shadow": True, "malformed": "pass"})
    params = _boot.attach_params(config, "eth1")
    assert params == dict(
        interface="eth1", object=CONFIG["object"],
        program=_abi.PROGRAM_NAME, mode="generic",
        pin_dir=CONFIG["pin_dir"], state="present", sip_ports=[5060, 5080],
        settings={"block_all_ports": False, "stealth": True,
                  "malformed": "pass", "shadow": True},
        limits=None, scanner_signatures=[],
        force=False, move_to_link=False, keep_maps=True,
        lock_timeout=_lock.DEFAULT_TIMEOUT)
    assert _defaults.SETTINGS["shadow"] is False    # not changed


def test_attach_params_carry_the_limits_and_signatures_as_written() -> None:
    """boot.json holds them as the module's options; the attach code
    checks them (_limits) as it does the module's."""
    limits = {"untrusted": {"register": {"rate": 2.0, "burst": 10}},
              "bans": True, "ban_time": 900}
    params = _boot.attach_params(dict(
        CONFIG, limits=limits, scanner_signatures=["sipvicious"]), "eth0")
    assert params["limits"] == limits
    assert params["scanner_signatures"] == ["sipvicious"]


def test_attach_params_keep_a_configured_lock_timeout() -> None:
    params = _boot.attach_params(dict(CONFIG, lock_timeout=5), "eth0")
    assert params["lock_timeout"] == 5


def test_attach_params_left_out_are_the_modules_defaults() -> None:
    """What the boot command attaches with when boot.json leaves a key out
    is what xdp_attach does when its task leaves the option out."""
    given = dict(interface="eth0", object=CONFIG["object"],
                 pin_dir=CONFIG["pin_dir"], state="present")
    validated = ArgumentSpecValidator(
        xdp_attach.argument_spec()).validate(given)
    assert validated.error_messages == []
    params = _boot.attach_params(dict(CONFIG, settings=None), "eth0")
    assert params == dict(validated.validated_parameters, keep_maps=True)
    assert params["mode"] == "auto" and params["sip_ports"] == [5060]
    # Both off: limits left out is the all-zero value.
    assert (params["limits"], params["scanner_signatures"]) == (None, [])


def test_attach_params_keep_a_configured_program_name() -> None:
    params = _boot.attach_params(dict(CONFIG, program="other"), "eth0")
    assert params["program"] == "other"


# Task: what _attach_run needs of an AnsibleModule


def tool(directory: Path, name: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_get_bin_path_finds_a_tool_in_opt_dirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    path = tool(tmp_path / "sbin", "fp-unit-tool")
    task = _boot.Task({})
    assert task.get_bin_path("fp-unit-tool",
                             opt_dirs=[str(tmp_path / "sbin")]) == str(path)
    assert task.get_bin_path("fp-unit-tool") is None


def test_get_bin_path_searches_path_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tool(tmp_path / "bin", "fp-unit-tool")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert _boot.Task({}).get_bin_path(
        "fp-unit-tool", required=True, opt_dirs=["/nonexistent"]) == \
        str(path)


def test_a_missing_tool_names_the_package_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_runner, "TOOL_DIRS", [])
    runner = _runner.Runner(_boot.Task({}))
    with pytest.raises(FastpathError) as err:
        runner.path("bpftool")
    assert err.value.msg.startswith(
        "bpftool was not found: install the package bpftool (Debian 12)")


def test_run_command_returns_rc_stdout_stderr_with_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FP_KEPT", "kept")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    script = ("import os, sys; print(os.environ['LANG'], "
              "os.environ['FP_KEPT'], os.environ['FP_ADDED']); "
              "sys.stderr.write('to stderr\\n'); sys.exit(3)")
    rc, out, err = _boot.Task({}).run_command(
        [sys.executable, "-c", script],
        environ_update={"LANG": "C", "FP_ADDED": "added"})
    assert (rc, out, err) == (3, "C kept added\n", "to stderr\n")
    assert os.environ["LANG"] == "de_DE.UTF-8"      # ours is untouched


def test_run_command_without_environ_update() -> None:
    rc, out, err = _boot.Task({}).run_command(["echo", "a b"])
    assert (rc, out, err) == (0, "a b\n", "")


def test_warn_writes_to_the_output() -> None:
    out = io.StringIO()
    _boot.Task({}, out).warn("the tag cache is read-only")
    assert out.getvalue() == "warning: the tag cache is read-only\n"


def test_task_looks_like_a_module_in_normal_mode() -> None:
    task = _boot.Task({"interface": "eth0"})
    assert task.params == {"interface": "eth0"}
    assert task.check_mode is False and task._diff is False


# Interfaces, exit status


def test_wait_for_interface_gives_up_after_the_timeout() -> None:
    start = time.monotonic()
    assert _boot.wait_for_interface("fpnosuch0", 0.2) is False
    took = time.monotonic() - start
    assert 0.2 <= took < 2


def test_wait_for_interface_returns_at_once_for_an_existing_one() -> None:
    start = time.monotonic()
    assert _boot.wait_for_interface("lo", 5) is True
    assert time.monotonic() - start < 0.5


def test_attach_of_an_interface_that_never_appears_fails() -> None:
    with pytest.raises(FastpathError) as err:
        _boot.attach(CONFIG, "fpnosuch0", io.StringIO(), 0)
    assert str(err.value) == ("Interface fpnosuch0 did not appear within 0 "
                              "s: check fastpath_interfaces.")


def test_main_without_config_exits_1_with_one_error_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "boot.json"
    assert _boot.main(["--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0] == ("error: Could not read %s (No such file or "
                        "directory): deploy with the vos.fastpath.fastpath "
                        "role first." % path)


def test_main_with_bad_json_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path, "{")
    assert _boot.main(["--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: %s is not valid JSON" % path)


# The bundle the role installs


def imported_module_utils(name: str, utils: Path) -> set[str]:
    """The module_utils that name imports at run time, and theirs (the
    imports under `if TYPE_CHECKING:` are for annotations only)."""
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.add(current)
        tree = ast.parse((utils / (current + ".py")).read_text())
        skipped = {id(node) for stmt in ast.walk(tree)
                   if isinstance(stmt, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(stmt.test)
                   for node in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, ast.ImportFrom) \
                    or node.level != 1:
                continue
            if node.module:
                todo.append(node.module)
            else:
                todo.extend(alias.name for alias in node.names)
    return found


def test_the_boot_bundle_carries_exactly_what_boot_imports() -> None:
    repo = Path(__file__).resolve().parents[2]
    listed = yaml.safe_load(
        (repo / "roles" / "fastpath" / "vars" / "main.yml").read_text()
    )["__fastpath_module_utils_files"]
    needed = imported_module_utils("_boot", repo / "plugins" / "module_utils")
    assert sorted(listed) == sorted(name + ".py" for name in needed)
    assert "_build.py" not in listed    # the compiler driver stays out

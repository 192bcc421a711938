"""Each default is written once: the roles' defaults agree with the
modules' (which take theirs from _defaults and _abi), so a host behaves
the same whether a playbook passes an option or leaves it out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi,
    _boot,
    _defaults,
    _input,
    _lock,
)
from ansible_collections.vos.fastpath.plugins.modules import (
    bpf_map_entry,
    xdp_attach,
    xdp_stats,
)

REPO = Path(__file__).resolve().parents[2]
FASTPATH = REPO / "roles" / "fastpath"
POLICY = REPO / "roles" / "policy"


def role_defaults() -> dict:
    return yaml.safe_load((FASTPATH / "defaults" / "main.yml").read_text())


def role_spec_defaults() -> dict:
    spec = yaml.safe_load(
        (FASTPATH / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    return {name: option["default"] for name, option in options.items()
            if "default" in option}


def module_defaults(module, required: dict) -> dict:
    """The defaults AnsibleModule applies to a task that gives only
    required."""
    with patch_module_args(required):
        return module.build_module().params


ATTACH = module_defaults(xdp_attach, {"interface": "eth0",
                                      "state": "absent"})
ENTRY = module_defaults(bpf_map_entry, {"map": "blocklist"})
STATS = module_defaults(xdp_stats, {})


@pytest.mark.parametrize("role_var, module_value", [
    ("fastpath_mode", ATTACH["mode"]),
    ("fastpath_sip_ports", ATTACH["sip_ports"]),
    ("fastpath_force", ATTACH["force"]),
    ("fastpath_pin_dir", ATTACH["pin_dir"]),
    ("fastpath_pin_dir", ENTRY["pin_dir"]),
    ("fastpath_pin_dir", STATS["pin_dir"]),
    ("fastpath_state_dir", ENTRY["state_dir"]),
    ("fastpath_state_dir", os.path.dirname(_boot.DEFAULT_CONFIG)),
    ("fastpath_lock_timeout", ATTACH["lock_timeout"]),
    ("fastpath_lock_timeout", ENTRY["lock_timeout"]),
    ("fastpath_lock_timeout", _lock.DEFAULT_TIMEOUT),
    ("fastpath_min_prefix_v4", ENTRY["min_prefix_v4"]),
    ("fastpath_min_prefix_v4", _input.MIN_PREFIX_V4),
    ("fastpath_min_prefix_v6", ENTRY["min_prefix_v6"]),
    ("fastpath_min_prefix_v6", _input.MIN_PREFIX_V6),
])
def test_role_default_is_the_modules(role_var: str,
                                     module_value: object) -> None:
    assert role_defaults()[role_var] == module_value
    assert role_spec_defaults()[role_var] == module_value


def test_settings_left_out_take_the_modules_defaults() -> None:
    """The role passes fastpath_settings as given; the module fills in
    the rest, and the boot command fills in the same."""
    assert role_defaults()["fastpath_settings"] == {}
    assert ATTACH["settings"] == _defaults.SETTINGS
    config = {"object": "/o", "pin_dir": _abi.DEFAULT_PIN_DIR,
              "interfaces": ["eth0"]}
    assert _boot.attach_params(config, "eth0")["settings"] == \
        ATTACH["settings"]


def test_role_argument_specs_and_defaults_file_agree() -> None:
    defaults = role_defaults()
    for name, value in role_spec_defaults().items():
        if name in defaults and "{{" not in str(defaults[name]):
            assert defaults[name] == value, name


def map_entry_tasks(role: Path) -> list[dict]:
    """The bpf_map_entry arguments of every task of a role."""
    found = []
    for path in sorted((role / "tasks").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            args = task.get("vos.fastpath.bpf_map_entry")
            if args is not None:
                found.append(dict(args, __file=path.name))
    return found


def test_policy_passes_the_fastpath_limits_or_the_modules_defaults() -> None:
    """The policy role sets no limit of its own: it passes the fastpath
    role's variables when the inventory (or -e) gives them, and the module
    falls back to the same defaults when not."""
    tasks = map_entry_tasks(POLICY)
    assert tasks
    for args in tasks:
        for option, var in (("min_prefix_v4", "fastpath_min_prefix_v4"),
                            ("min_prefix_v6", "fastpath_min_prefix_v6"),
                            ("lock_timeout", "fastpath_lock_timeout")):
            assert args[option] == "{{ %s | default(omit) }}" % var, (
                args["__file"], option)


def test_no_role_passes_the_deprecated_save_option() -> None:
    tasks = map_entry_tasks(POLICY) + map_entry_tasks(FASTPATH)
    assert [args["__file"] for args in tasks if "save" in args] == []
    restore = [args for args in map_entry_tasks(FASTPATH)
               if args.get("restore")]
    assert [args["lock_timeout"] for args in restore] == [
        "{{ fastpath_lock_timeout }}"]

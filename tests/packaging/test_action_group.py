"""meta/runtime.yml's action group `fastpath`: module_defaults on
group/vos.fastpath.fastpath sets pin_dir once for every module of the
group, through a real ansible-playbook run of the installed collection on
localhost. The modules read the pins only, and the pin directory does not
exist: each one fails naming the directory it was given."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.packaging.collection import REPO, run, tool, user_env

TARGET_PYTHON = "/usr/bin/python3"
GROUP = yaml.safe_load(
    (REPO / "meta" / "runtime.yml").read_text())["action_groups"]["fastpath"]


def module_options(collections: Path, workdir: Path) -> dict[str, set[str]]:
    """Every module of the installed collection: name -> its options, as
    ansible-doc documents them (doc fragments included)."""
    env = user_env(workdir, collections)
    listed = json.loads(run([tool("ansible-doc"), "-t", "module", "--list",
                             "--json", "vos.fastpath"], cwd=workdir,
                            env=env).stdout)
    docs = json.loads(run([tool("ansible-doc"), "-t", "module", "--json",
                           *sorted(listed)], cwd=workdir, env=env).stdout)
    return {name.rsplit(".", 1)[1]: set(doc["doc"].get("options") or {})
            for name, doc in docs.items()}


def test_the_group_is_every_module_that_takes_pin_dir(installed_collection,
                                                      tmp_path):
    """A group's defaults go to each module in it, and a module without the
    option fails on it: so exactly the modules with pin_dir."""
    options = module_options(installed_collection, tmp_path)
    with_pin_dir = {name for name, opts in options.items()
                    if "pin_dir" in opts}
    assert len(with_pin_dir) >= 4, options
    assert sorted(GROUP) == sorted(with_pin_dir)


def test_module_defaults_of_the_group_set_pin_dir_for_every_module(
        installed_collection, tmp_path):
    from_group = tmp_path / "pins-set-by-the-group"
    from_task = tmp_path / "pins-set-by-the-task"
    results = tmp_path / "results.json"
    play = [{
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {
            "group/vos.fastpath.fastpath": {"pin_dir": str(from_group)}},
        "tasks": [
            {"name": "xdp_stats", "vos.fastpath.xdp_stats": {},
             "register": "stats", "ignore_errors": True},
            {"name": "xdp_bans", "vos.fastpath.xdp_bans": {
                "state_dir": str(tmp_path / "state")},
             "register": "bans", "ignore_errors": True},
            {"name": "bpf_map_entry", "vos.fastpath.bpf_map_entry": {
                "map": "blocklist", "entries": ["203.0.113.7"],
                "state_dir": str(tmp_path / "state")},
             "check_mode": True, "register": "entry", "ignore_errors": True},
            {"name": "a task's own pin_dir wins",
             "vos.fastpath.xdp_stats": {"pin_dir": str(from_task)},
             "register": "own", "ignore_errors": True},
            {"name": "save the results", "ansible.builtin.copy": {
                "content": "{{ {'stats': stats, 'bans': bans, "
                           "'entry': entry, 'own': own} | to_json }}",
                "dest": str(results)}},
        ],
    }]
    book = tmp_path / "play.yml"
    book.write_text(json.dumps(play))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local",
        "ansible_python_interpreter": TARGET_PYTHON}}}}))
    run([tool("ansible-playbook"), "-i", str(inventory), str(book)],
        cwd=tmp_path, env=user_env(tmp_path, installed_collection))
    got = json.loads(results.read_text())
    for task in ("stats", "bans", "entry"):
        assert got[task]["failed"], got[task]
        assert str(from_group) in got[task]["msg"], got[task]["msg"]
    assert got["own"]["failed"], got["own"]
    assert str(from_task) in got["own"]["msg"]
    assert str(from_group) not in got["own"]["msg"]
    assert not (tmp_path / "state").exists(), "a failed module wrote state"

"""The playbooks' fastpath_ variables: inventory variables with the old bare
names change nothing; the old names given with -e still work, with a
deprecation warning that names the new one; the new name wins."""

from __future__ import annotations

from plugins.module_utils import _lists
from tests.playbooks.playbook_run import run_playbook
from tests.playbooks.test_deploy import assert_ok

# What an operator's inventory may already hold under the old names.
COLLIDING = {"address": "198.51.100.99", "state": "absent", "ttl": 60,
             "source": "inventory", "file": "/nonexistent/list.txt",
             "target": "edge2"}


def deprecation(old: str, new: str) -> str:
    return ("[DEPRECATION WARNING]: The playbook variable %s is deprecated: "
            "use %s (-e %s=...)." % (old, new, new))


def test_new_names_ignore_inventory_variables_of_the_old_names(
        fleet_factory):
    fleet = fleet_factory(2)
    inventory = fleet.inventory(dict(COLLIDING), edge1=dict(COLLIDING))
    assert_ok(run_playbook("deploy.yml", inventory))

    # state: absent, ttl and source of the inventory are not the playbook's.
    allowed = run_playbook("allow.yml", inventory,
                           extra_vars={"fastpath_address": "192.0.2.20"})
    assert_ok(allowed)
    assert "DEPRECATION" not in allowed.output
    for host in fleet.hosts:
        entries = host.entries("allowlist")
        assert entries["192.0.2.20/32"] == (0, _lists.source_tag("manual"))
        assert "198.51.100.99/32" not in entries

    # Old names on the command line still work; the new name wins.
    blocked = run_playbook("block.yml", inventory, extra_vars={
        "address": "203.0.113.7", "ttl": 3600,
        "fastpath_hosts": "edge1", "target": "edge2"})
    assert_ok(blocked)
    assert set(blocked.recap) == {"edge1"}
    assert deprecation("address", "fastpath_address") in blocked.output
    assert deprecation("ttl", "fastpath_ttl") in blocked.output
    assert ("The playbook variable target is deprecated and ignored, as "
            "fastpath_hosts is given" in blocked.output)
    assert "removed from collection 'vos.fastpath' version 0.2.0" in \
        blocked.output
    expires, _owner = fleet["edge1"].entries("blocklist")["203.0.113.7/32"]
    assert expires > 0
    assert "203.0.113.7/32" not in fleet["edge2"].entries("blocklist")

# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy's health gate over a batch of hosts, and the text of a
failed task, so that deploy.yml only loops and reports.

The documentation is in health_gate.yml and failure_text.yml next to this
file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping


def failure_text(result, task="a task"):
    """One line for a failed task's result: the messages of its failed
    loop items (a loop's own msg says only that one item failed), or its
    msg."""
    if not isinstance(result, Mapping):
        return "%s: failed" % task
    items = [item for item in result.get("results") or ()
             if isinstance(item, Mapping) and item.get("failed")]
    messages = [" ".join(str(item.get("msg") or "failed").split())
                for item in items]
    text = "; ".join(messages) or " ".join(
        str(result.get("msg") or "failed").split())
    return "%s: %s" % (task, text)


def health_gate(batch, hostvars):
    """{healthy, unhealthy: {host: [problems]}, msg} of the hosts of a
    batch, from the fastpath_healthy and fastpath_health_problems that the
    fastpath role's health step (or the deploy's rescue) set on each."""
    unhealthy = {}
    for host in batch:
        facts = hostvars.get(host) or {}
        if facts.get("fastpath_healthy") is True:
            continue
        unhealthy[host] = list(facts.get("fastpath_health_problems")
                               or ["no result"])
    msg = ""
    if unhealthy:
        msg = ("The health gate failed (%s): this batch went back to the "
               "object it ran before and the rollout stopped. Fix the "
               "problem and run deploy.yml again." % "; ".join(
                   "%s: %s" % (host, "; ".join(problems))
                   for host, problems in unhealthy.items()))
    return {"healthy": not unhealthy, "unhealthy": unhealthy, "msg": msg}


class FilterModule(object):
    """vos.fastpath filters."""

    def filters(self):
        return {"health_gate": health_gate, "failure_text": failure_text}

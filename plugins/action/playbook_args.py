# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbook_args action: the playbooks' variables by their fastpath_
names, with the old bare names still read, and deprecated, for one release.

The values are the task's result, for the playbook to register, not facts:
facts would rank below inventory variables and could outlive the run in a
fact cache.

The documentation is in plugins/modules/playbook_args.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import load_extra_vars

display = Display()


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("names",))
    _requires_connection = False

    def _given_by_the_caller(self):
        """The variables of the play and of the command line, never the
        inventory's: an inventory variable that happens to have an old
        name (state, file, ...) must not count as one."""
        given = {}
        try:
            given.update(self._task.get_play().vars)
        except AttributeError:
            pass
        given.update(load_extra_vars(self._loader))
        return given

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        _check, args = self.validate_argument_spec(argument_spec=dict(
            names=dict(type="dict", required=True)))
        given = self._given_by_the_caller()
        for new, old in args["names"].items():
            if new in task_vars:
                result[new] = self._templar.template(task_vars[new])
                if old in given:
                    self._deprecate("The playbook variable %s is deprecated "
                                    "and ignored, as %s is given: give only "
                                    "%s." % (old, new, new))
            elif old in given:
                result[new] = self._templar.template(given[old])
                self._deprecate("The playbook variable %s is deprecated: "
                                "use %s (-e %s=...)." % (old, new, new))
        result["changed"] = False
        return result

    @staticmethod
    def _deprecate(msg):
        display.deprecated(msg, version="0.2.0",
                           collection_name="vos.fastpath")

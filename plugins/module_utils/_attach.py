# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load, attach, replace and detach the XDP program behind xdp_attach.

Private to this collection. The work is split in three:

- Host: the only code that touches the kernel (bpf() through _bpf, bpffs
  paths, `ip` and `bpftool` through module.run_command with LANG=C).
- read_current() and plan_present()/plan_absent(): what is there now and
  what has to change, computed before anything changes (check mode stops
  there).
- apply_present()/apply_absent(): the plan, step by step; a failure undoes
  the steps already done, so nothing is left half-applied.

Pin layout under pin_dir: one pin per map, by its name (shared by every
interface of the host); one pin per interface for its program,
prog_<ifname>; a transient tmp_<pid> directory while a load is in flight.

The program tag is the kernel's hash of the loaded instructions, known
only after a load. TAG_CACHE remembers, per object file (sha256), kernel
and bpftool, the tag of its last load, so that a run where nothing changed
loads nothing; it lives in /run, which a reboot empties with bpffs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import platform
import re

from . import _abi, _bpf, _build, _facts, _files

TAG_CACHE = "/run/vos-fastpath/object-tags.json"
TAG_CACHE_SIZE = 64
LOG_TAIL_LINES = 30
COMMAND_ENV = {"LANG": "C", "LC_ALL": "C"}

# Attach modes as `ip -json link` names them, and `ip link set` keywords.
IP_KEYWORDS = {"native": "xdpdrv", "generic": "xdpgeneric",
               "offload": "xdpoffload"}
# `ip` errors after which `auto` must not fall back to generic mode: the
# interface, not its driver, is the problem.
NOT_A_REFUSAL = ("does not exist", "already attached",
                 "can't be active at the same time", "Operation not permitted")

NONE, INSTALL, VERIFY, REPLACE, MODE_CHANGE = (
    "none", "install", "verify", "replace", "mode_change")

SETTINGS_DEFAULTS = {"block_all_ports": False, "stealth": True,
                     "malformed": "drop", "shadow": False}
KNOWN_FLAGS = (_abi.FP_BLOCK_ALL_PORTS | _abi.FP_STEALTH_OFF
               | _abi.FP_MALFORMED_PASS | _abi.FP_SHADOW)


class AttachError(Exception):
    """One sentence that says what to do, with the command that failed."""

    def __init__(self, msg, cmd=None, rc=None, stdout="", stderr=""):
        super(AttachError, self).__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def details(self):
        out = {}
        if self.cmd is not None:
            out["cmd"] = " ".join(self.cmd)
        if self.rc is not None:
            out.update(rc=self.rc, stdout=self.stdout, stderr=self.stderr)
        return out


# Pure helpers: settings, ports, names, logs.


def settings_to_flags(settings, current=0):
    """fp_settings.flags for the module's settings; bits this collection
    does not know are kept as they are."""
    flags = current & ~KNOWN_FLAGS
    if settings["block_all_ports"]:
        flags |= _abi.FP_BLOCK_ALL_PORTS
    if not settings["stealth"]:
        flags |= _abi.FP_STEALTH_OFF
    if settings["malformed"] == "pass":
        flags |= _abi.FP_MALFORMED_PASS
    if settings["shadow"]:
        flags |= _abi.FP_SHADOW
    return flags


def flags_to_settings(flags):
    return {
        "block_all_ports": bool(flags & _abi.FP_BLOCK_ALL_PORTS),
        "stealth": not flags & _abi.FP_STEALTH_OFF,
        "malformed": "pass" if flags & _abi.FP_MALFORMED_PASS else "drop",
        "shadow": bool(flags & _abi.FP_SHADOW),
    }


def normalize_ports(ports):
    """Sorted unique ports; raise AttachError on one out of range."""
    bad = [p for p in ports if not 1 <= p <= 65535]
    if bad:
        raise AttachError("sip_ports must hold ports from 1 to 65535, not "
                          "%s: fix the task's sip_ports." % bad[0])
    return sorted(set(ports))


def prog_pin_name(ifname):
    """bpffs refuses '.' in names (eth0.100); ':' never is in an ifname."""
    return "prog_" + ifname.replace(".", ":")


def same_name(kernel_name, program):
    """The kernel keeps the first 15 characters of a program's name."""
    return bool(kernel_name) and kernel_name == program[:15]


def verifier_tail(stderr, lines=LOG_TAIL_LINES):
    """The last lines of the verifier log in bpftool's stderr (the whole
    stderr's tail when there is no log)."""
    text = stderr or ""
    begin = text.find("-- BEGIN PROG LOAD LOG --")
    end = text.find("-- END PROG LOAD LOG --")
    if begin >= 0 and end > begin:
        text = text[begin + len("-- BEGIN PROG LOAD LOG --"):end]
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def layout(m):
    """The comparable part of a map: an _abi.MapSpec or a _bpf.Map."""
    return {"type": m.map_type, "key_size": m.key_size,
            "value_size": m.value_size, "max_entries": m.max_entries,
            "flags": m.flags}


def layout_problem(name, path, found):
    """A sentence naming the map when found differs from _abi.MAPS."""
    expected = layout(_abi.MAPS[name])
    diffs = ["%s %s (the program needs %s)" % (key, found[key], value)
             for key, value in sorted(expected.items())
             if found[key] != value]
    if not diffs:
        return None
    return ("The pinned map %s (%s) does not have the layout of the "
            "program's map %s: %s. Nothing was changed: save its entries "
            "and remove the pin, or choose another pin_dir."
            % (path, name, name, ", ".join(diffs)))


def load_failure(stderr, obj, program):
    """The sentence for a failed `bpftool prog loadall`."""
    err = stderr or ""
    reuse = re.search(r"couldn't reuse pinned map at '([^']+)'", err)
    if reuse:
        return ("The pinned map %s does not have the layout of the map of "
                "the same name in %s: nothing was changed; save its entries "
                "and remove the pin, or choose another pin_dir."
                % (reuse.group(1), obj))
    if "PROG LOAD LOG" in err:
        return ("The kernel's verifier rejected %s from %s: fix the "
                "program; the program attached before was left as it was. "
                "The verifier log ends with:\n%s"
                % (program, obj, verifier_tail(err)))
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    return ("bpftool could not load %s (%s): check that it is an XDP object "
            "built for this kernel; nothing was changed."
            % (obj, errors[0] if errors else first_line(err)))


def first_line(text):
    lines = [line.strip() for line in (text or "").splitlines()
             if line.strip()]
    return lines[0] if lines else ""


def object_map_names(path):
    """Names of the maps that an object declares in its .maps section (BTF
    style, as libbpf reads them), sorted."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return sorted(_build.elf_names(data)["maps"])
    except ValueError as e:
        raise AttachError("%s is not a BPF object (%s): build it with "
                          "vos.fastpath.bpf_build or 'make'." % (path, e))


def cache_key(obj, bpftool):
    """The object's sha256, the kernel, and bpftool by path, size and time
    (another libbpf may relocate the same object differently)."""
    st = os.stat(bpftool)
    return " ".join((_files.sha256_file(obj), platform.release(),
                     platform.version(),
                     "%s:%d:%d" % (bpftool, st.st_size, int(st.st_mtime))))


class TagCache:
    """object sha256 + kernel + bpftool -> program tag of the last load."""

    def __init__(self, path=TAG_CACHE):
        self.path = path

    def _read(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (IOError, OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def lookup(self, key):
        return self._read().get(key)

    def record(self, key, tag):
        data = self._read()
        data.pop(key, None)
        data[key] = tag
        while len(data) > TAG_CACHE_SIZE:
            data.pop(next(iter(data)))
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        _files.write_atomically(
            self.path, json.dumps(data, indent=1).encode())


# The kernel boundary.


class Loaded:
    """A program loaded under a temporary pin."""

    def __init__(self, pin, prog_id, tag, maps_dir):
        self.pin = pin
        self.id = prog_id
        self.tag = tag
        self.maps_dir = maps_dir


class Host:
    """Every read and change of kernel state that xdp_attach makes."""

    def __init__(self, module):
        self.module = module
        self._tools = {}

    def tool(self, name):
        if name not in self._tools:
            self._tools[name] = self.module.get_bin_path(
                name, required=True, opt_dirs=_facts.TOOL_DIRS)
        return self._tools[name]

    def run(self, argv, msg):
        rc, out, err = self.module.run_command(argv,
                                               environ_update=COMMAND_ENV)
        if rc != 0:
            raise AttachError(msg, cmd=argv, rc=rc, stdout=out, stderr=err)
        return out, err

    # Reads.

    def link(self, ifname):
        argv = [self.tool("ip"), "-json", "link", "show", "dev", ifname]
        rc, out, err = self.module.run_command(argv,
                                               environ_update=COMMAND_ENV)
        if rc != 0:
            raise AttachError(
                "Interface %s was not found (%s): check the interface name "
                "on this host." % (ifname, first_line(err)),
                cmd=argv, rc=rc, stdout=out, stderr=err)
        links = json.loads(out or "[]")
        return links[0]

    def attached(self, ifname):
        """{id, name, tag, mode} of the XDP program on ifname, or None."""
        return _facts.attached_program(self.link(ifname))

    def links(self):
        return _facts.links(self.module, self.tool("ip"))

    def bpffs_mount(self, path):
        """The bpffs mount point that holds path, or None."""
        return _facts.bpffs_mount(path)

    def exists(self, path):
        return os.path.lexists(path)

    def listdir(self, path):
        return sorted(os.listdir(path))

    def map_layouts(self, pin_dir):
        """{name: layout with its id} of the contract's maps pinned under
        pin_dir."""
        found = {}
        for name in _abi.MAPS:
            path = os.path.join(pin_dir, name)
            if not os.path.lexists(path):
                continue
            try:
                with _bpf.Map.open_pinned(path) as m:
                    found[name] = dict(layout(m), id=m.id, name=m.name)
            except OSError as e:
                raise AttachError(
                    "The pin %s cannot be opened as a map (%s): remove it "
                    "or choose another pin_dir." % (path, e))
        return found

    def program_maps(self, prog_id):
        """{name: layout with its id} of the maps a loaded program uses."""
        found = {}
        for map_id in _facts.program_map_ids(prog_id):
            try:
                with _bpf.Map(_bpf.map_fd_by_id(map_id)) as m:
                    found[m.name] = dict(layout(m), id=m.id, name=m.name)
            except OSError:
                continue
        return found

    def pinned_prog_id(self, path):
        if not os.path.lexists(path):
            return None
        try:
            fd = _bpf.obj_get(path)
        except OSError:
            return None
        try:
            return _bpf.prog_info(fd).id
        except OSError:
            return None
        finally:
            os.close(fd)

    @staticmethod
    def _open(ref):
        """A map by its pin path or its id."""
        if isinstance(ref, int):
            return _bpf.Map(_bpf.map_fd_by_id(ref))
        return _bpf.Map.open_pinned(ref)

    def read_ports(self, ref):
        with self._open(ref) as m:
            keys, values = m.lookup_batch()
        return [_abi.U32.unpack_from(keys, i * 4)[0]
                for i in range(len(values)) if values[i:i + 1] != b"\0"]

    def read_flags(self, ref):
        with self._open(ref) as m:
            raw = m.lookup(_abi.U32.pack(0))
        return _abi.SETTINGS.unpack(raw)[0] if raw else 0

    def attached_map_ids(self, skip_ifname):
        """{map id: [interfaces]} over every XDP program attached on the
        host, except on skip_ifname."""
        users = {}
        for link in self.links():
            prog = _facts.attached_program(link)
            if link["ifname"] == skip_ifname or not prog or not prog["id"]:
                continue
            for map_id in _facts.program_map_ids(prog["id"]):
                users.setdefault(map_id, []).append(link["ifname"])
        return users

    # Changes.

    def make_dir(self, path):
        os.mkdir(path, 0o700)

    def remove_dir(self, path):
        os.rmdir(path)

    def remove_tree(self, path):
        if not os.path.lexists(path):
            return
        for entry in os.listdir(path):
            full = os.path.join(path, entry)
            if os.path.isdir(full) and not os.path.islink(full):
                self.remove_tree(full)
            else:
                os.unlink(full)
        os.rmdir(path)

    def unlink(self, path):
        try:
            os.unlink(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def rename(self, src, dst):
        os.rename(src, dst)

    def pin_map_id(self, map_id, path):
        self._pin(_bpf.map_fd_by_id(map_id), path)

    def pin_prog_id(self, prog_id, path):
        self._pin(_bpf.prog_fd_by_id(prog_id), path)

    @staticmethod
    def _pin(fd, path):
        try:
            _bpf.obj_pin(fd, path)
        finally:
            os.close(fd)

    def load(self, obj, tmp_dir, program, reuse):
        """Load every program of obj as XDP under tmp_dir/progs, reusing
        the pinned maps of reuse {name: path}; every map of the object is
        pinned again under tmp_dir/maps. Raise AttachError with the tail of
        the verifier log when the kernel refuses it."""
        progs = os.path.join(tmp_dir, "progs")
        maps_dir = os.path.join(tmp_dir, "maps")
        argv = [self.tool("bpftool"), "prog", "loadall", obj, progs,
                "type", "xdp"]
        for name in sorted(reuse):
            argv += ["map", "name", name, "pinned", reuse[name]]
        argv += ["pinmaps", maps_dir]
        rc, out, err = self.module.run_command(argv,
                                               environ_update=COMMAND_ENV)
        if rc != 0:
            raise AttachError(load_failure(err, obj, program), cmd=argv,
                              rc=rc, stdout=out, stderr=verifier_tail(err))
        pin = os.path.join(progs, program)
        if not os.path.lexists(pin):
            names = sorted(os.listdir(progs)) if os.path.isdir(progs) else []
            raise AttachError(
                "%s has no program named %s (it has %s): set program to one "
                "of them." % (obj, program, ", ".join(names) or "none"),
                cmd=argv)
        fd = _bpf.obj_get(pin)
        try:
            info = _bpf.prog_info(fd)
        finally:
            os.close(fd)
        return Loaded(pin, info.id, bytes(info.tag).hex(), maps_dir)

    def attach(self, ifname, mode, pin, replace=False):
        argv = [self.tool("ip")]
        if replace:
            argv.append("-force")
        argv += ["link", "set", "dev", ifname, IP_KEYWORDS[mode],
                 "pinned", pin]
        return self.run(argv, "Could not attach the program to %s in %s "
                        "mode: see stderr." % (ifname, mode))

    def detach(self, ifname, mode):
        argv = [self.tool("ip"), "link", "set", "dev", ifname,
                IP_KEYWORDS.get(mode, "xdp"), "off"]
        return self.run(argv, "Could not detach the XDP program of %s: see "
                        "stderr." % ifname)

    def write_ports(self, ref, ports, clear=()):
        """sip_ports[p] = 1 for ports, 0 for clear; additions first so that
        the map never lacks a port of both sets."""
        keys = [_abi.U32.pack(p) for p in ports] + \
            [_abi.U32.pack(p) for p in clear]
        values = b"\1" * len(ports) + b"\0" * len(clear)
        with self._open(ref) as m:
            m.update_batch(b"".join(keys), values)

    def write_flags(self, ref, flags):
        with self._open(ref) as m:
            m.update(_abi.U32.pack(0), _abi.SETTINGS.pack(flags, 0))


# What is there now.


class Current:
    """The interface, its XDP program and our pins, as the kernel has
    them."""

    def __init__(self):
        self.prog = None          # {id, name, tag, mode} or None
        self.ours = False         # its name is the module's program
        self.prog_maps = {}       # {name: layout} of the attached program
        self.pins = {}            # {name: layout} pinned under pin_dir
        self.bad_pins = {}        # {name: why} pins of another layout
        self.adopt = {}           # {name: map id} to pin from prog_maps
        self.uses_pins = False    # the program uses every map pinned
        self.prog_pin_id = None   # program id behind pin_dir/prog_<if>
        self.ports = None         # sip_ports contents or None (no map yet)
        self.flags = None         # settings flags or None (no map yet)
        self.pin_dir_exists = False

    def ref(self, pin_dir, name):
        """How to open one of our maps: its pin, or the attached program's
        map that will be pinned, or None when it does not exist yet."""
        if name in self.pins:
            return os.path.join(pin_dir, name)
        return self.adopt.get(name)

    def summary(self):
        if not self.prog:
            return None
        return dict(self.prog)


def read_current(host, ifname, pin_dir, program):
    cur = Current()
    link = host.link(ifname)
    cur.prog = _facts.attached_program(link)
    cur.ours = bool(cur.prog) and same_name(cur.prog["name"], program)
    cur.pin_dir_exists = host.exists(pin_dir)
    if cur.pin_dir_exists:
        cur.pins = host.map_layouts(pin_dir)
    for name, found in sorted(cur.pins.items()):
        problem = layout_problem(name, os.path.join(pin_dir, name), found)
        if problem:
            cur.bad_pins[name] = problem
            del cur.pins[name]
    if cur.ours and cur.prog["id"]:
        cur.prog_maps = host.program_maps(cur.prog["id"])
        cur.adopt = {
            name: found["id"] for name, found in cur.prog_maps.items()
            if name in _abi.MAPS and name not in cur.pins
            and name not in cur.bad_pins
            and layout_problem(name, "", found) is None}
        cur.uses_pins = all(
            name in cur.prog_maps and cur.prog_maps[name]["id"] == found["id"]
            for name, found in cur.pins.items())
    cur.prog_pin_id = host.pinned_prog_id(
        os.path.join(pin_dir, prog_pin_name(ifname)))
    ports_ref = cur.ref(pin_dir, "sip_ports")
    if ports_ref is not None:
        cur.ports = sorted(host.read_ports(ports_ref))
    settings_ref = cur.ref(pin_dir, "settings")
    if settings_ref is not None:
        cur.flags = host.read_flags(settings_ref)
    return cur


# What has to change.


class Plan:
    """The steps for state=present, decided before any change."""

    def __init__(self):
        self.action = NONE        # NONE, INSTALL, VERIFY, REPLACE, MODE_CHANGE
        self.object_maps = []     # maps the object declares
        self.target_mode = None   # native, generic or auto (try native)
        self.mode_reason = None
        self.adopt = {}
        self.keep_program = False  # MODE_CHANGE of the loaded program
        self.repin_prog = False
        self.ports_add = []
        self.ports_clear = []
        self.flags = 0
        self.write_flags = False
        self.make_pin_dir = False

    @property
    def maps_changed(self):
        """Something changes besides the program itself."""
        return (bool(self.adopt) or self.repin_prog or self.write_flags
                or bool(self.ports_add or self.ports_clear)
                or self.make_pin_dir)

    @property
    def needs_load(self):
        return self.action != NONE and not self.keep_program

    @property
    def changed(self):
        """VERIFY counts: only a load tells whether the tags differ."""
        return self.action != NONE or self.maps_changed


def foreign_error(ifname, prog, program):
    return AttachError(
        "%s has the XDP program %s (id %s, %s mode) attached, which is not "
        "vos.fastpath's %s: detach it, or set force: true to replace it."
        % (ifname, prog["name"] or "(no name)", prog["id"], prog["mode"],
           program))


def plan_present(cur, ifname, mode, program, force, ports, settings,
                 cached_tag, object_maps):
    """object_maps: the names of the maps the object declares."""
    if cur.bad_pins:
        raise AttachError(" ".join(msg for _name, msg in
                                   sorted(cur.bad_pins.items())))
    plan = Plan()
    plan.object_maps = sorted(object_maps)
    prog = cur.prog
    if prog and not cur.ours and not force:
        raise foreign_error(ifname, prog, program)
    plan.make_pin_dir = not cur.pin_dir_exists
    plan.adopt = dict(cur.adopt)

    in_use = prog["mode"] if prog else None
    if mode != "auto":
        plan.target_mode = mode
        plan.mode_reason = "%s mode requested" % mode
    elif in_use in ("native", "generic"):
        plan.target_mode = in_use
        plan.mode_reason = ("auto: kept %s, the mode already in use, so that "
                            "the program is never detached" % in_use)
    else:
        plan.target_mode = "auto"
        plan.mode_reason = ("auto: native is tried first, generic only if "
                            "the driver refuses native")

    same_mode = in_use == plan.target_mode
    current = cur.ours and cur.uses_pins and cached_tag == prog["tag"]
    if not prog:
        plan.action = INSTALL
    elif not same_mode:
        plan.action = MODE_CHANGE
        plan.keep_program = current
        plan.repin_prog = current and cur.prog_pin_id != prog["id"]
    elif cur.ours and cur.uses_pins and cached_tag in (None, prog["tag"]):
        # Without a remembered tag only a load tells whether it differs.
        plan.action = NONE if cached_tag else VERIFY
        plan.repin_prog = cur.prog_pin_id != prog["id"]
        if mode == "auto":
            plan.mode_reason = ("auto: the program is already attached in "
                                "%s mode" % in_use)
    else:
        plan.action = REPLACE

    plan.flags = settings_to_flags(settings, cur.flags or 0)
    will_exist = set(object_maps) | set(cur.pins) | set(cur.adopt)
    if "sip_ports" in will_exist:
        before = set(cur.ports or ())
        plan.ports_add = sorted(set(ports) - before)
        plan.ports_clear = sorted(before - set(ports))
    if "settings" in will_exist:
        plan.write_flags = plan.flags != (cur.flags or 0)
    return plan


class AbsentPlan:
    def __init__(self):
        self.detach = None        # {id, name, tag, mode} to detach
        self.remove_prog_pin = False
        self.remove_maps = []     # names of map pins to remove
        self.maps_in_use_by = []  # interfaces that keep the maps alive
        self.remove_pin_dir = False
        self.warnings = []

    @property
    def changed(self):
        return bool(self.detach or self.remove_prog_pin or self.remove_maps)


def plan_absent(cur, ifname, pin_dir, program, force, keep_maps, users,
                pin_dir_entries):
    """users: {map id: [interfaces]} of programs attached elsewhere;
    pin_dir_entries: the names under pin_dir now."""
    plan = AbsentPlan()
    prog = cur.prog
    if prog and (cur.ours or force):
        plan.detach = dict(prog)
    elif prog:
        plan.warnings.append(
            "%s has the XDP program %s (id %s) attached, which is not "
            "vos.fastpath's %s: it was left attached (force: true detaches "
            "it)." % (ifname, prog["name"], prog["id"], program))
    plan.remove_prog_pin = cur.prog_pin_id is not None or \
        prog_pin_name(ifname) in pin_dir_entries
    if keep_maps or not cur.pins:
        return plan
    in_use = set()
    for found in cur.pins.values():
        in_use.update(users.get(found["id"], ()))
    if in_use:
        plan.maps_in_use_by = sorted(in_use)
        plan.warnings.append(
            "The maps under %s were kept: the program on %s still uses "
            "them." % (pin_dir, ", ".join(plan.maps_in_use_by)))
        return plan
    plan.remove_maps = sorted(cur.pins)
    left = set(pin_dir_entries) - set(plan.remove_maps)
    if plan.remove_prog_pin:
        left.discard(prog_pin_name(ifname))
    plan.remove_pin_dir = not left
    return plan


# Doing it.


class Undo:
    """Steps to revert, newest first, when a later step fails."""

    def __init__(self):
        self.steps = []

    def push(self, step):
        self.steps.append(step)

    def run(self):
        while self.steps:
            step = self.steps.pop()
            try:
                step()
            except (OSError, AttachError):
                pass


def is_refusal(err):
    return not any(text in err.stderr for text in NOT_A_REFUSAL)


def attach_new(host, ifname, target, pin):
    """Attach where no program is; (mode, reason)."""
    if target != "auto":
        try:
            host.attach(ifname, target, pin)
        except AttachError as e:
            e.msg = ("The kernel refused to attach the program to %s in %s "
                     "mode (%s): use mode: auto or another mode."
                     % (ifname, target, first_line(e.stderr)))
            raise
        return target, "%s mode requested" % target
    try:
        host.attach(ifname, "native", pin)
        return "native", "auto: the driver accepted native XDP"
    except AttachError as e:
        if not is_refusal(e):
            raise
        refusal = first_line(e.stderr)
    try:
        host.attach(ifname, "generic", pin)
    except AttachError as e:
        e.msg = ("Neither native (%s) nor generic XDP (%s) could be attached "
                 "to %s: see stderr." % (refusal, first_line(e.stderr),
                                         ifname))
        raise
    return "generic", ("auto: the driver refused native XDP (%s), so "
                       "generic XDP is in use" % refusal)


class Outcome:
    """What apply_present did."""

    def __init__(self, plan):
        self.action = plan.action
        self.mode_reason = plan.mode_reason
        self.reused_maps = []
        self.created_maps = []
        self.detached_for_mode_change = False


def apply_present(host, cur, plan, ifname, pin_dir, obj, program, record_tag):
    """Carry out plan; record_tag(tag) is called after every load. On a
    failure every step done is undone and AttachError raised."""
    out = Outcome(plan)
    undo = Undo()
    tmp = os.path.join(pin_dir, "tmp_%d" % os.getpid())
    try:
        if plan.make_pin_dir:
            host.make_dir(pin_dir)
            undo.push(lambda: (host.remove_tree(tmp),
                               host.remove_dir(pin_dir)))
        for name, map_id in sorted(plan.adopt.items()):
            path = os.path.join(pin_dir, name)
            host.pin_map_id(map_id, path)
            undo.push(lambda path=path: host.unlink(path))
        if plan.needs_load or plan.action == MODE_CHANGE:
            host.make_dir(tmp)
        loaded = None
        if plan.needs_load:
            loaded = load_step(host, cur, plan, out, pin_dir, tmp,
                               obj, program, undo)
            record_tag(loaded.tag)
        write_maps(host, cur, plan, pin_dir, undo)
        attach_step(host, cur, plan, out, ifname, tmp, loaded, undo)
        prog_pin = os.path.join(pin_dir, prog_pin_name(ifname))
        if loaded is not None and out.action != NONE:
            host.rename(loaded.pin, prog_pin)
        elif plan.repin_prog:
            host.unlink(prog_pin)
            host.pin_prog_id(cur.prog["id"], prog_pin)
    except (AttachError, OSError) as e:
        undo.run()
        if isinstance(e, AttachError):
            raise
        raise AttachError("Could not change the pins under %s (%s): nothing "
                          "was changed." % (pin_dir, e))
    finally:
        if host.exists(tmp):
            host.remove_tree(tmp)
    return out


def load_step(host, cur, plan, out, pin_dir, tmp, obj, program, undo):
    """Load the object reusing our pinned maps; pin the maps it created.
    A VERIFY whose tag matches the attached program's becomes NONE."""
    reuse = dict((name, os.path.join(pin_dir, name))
                 for name in set(cur.pins) | set(plan.adopt)
                 if name in plan.object_maps)
    loaded = host.load(obj, tmp, program, reuse)
    out.reused_maps = sorted(reuse)
    if plan.action == VERIFY:
        out.action = REPLACE if loaded.tag != cur.prog["tag"] else NONE
    if out.action == NONE:
        return loaded
    for name in sorted(set(plan.object_maps) - set(reuse)):
        path = os.path.join(pin_dir, name)
        host.rename(os.path.join(loaded.maps_dir, name), path)
        undo.push(lambda path=path: host.unlink(path))
        out.created_maps.append(name)
    return loaded


def attach_step(host, cur, plan, out, ifname, tmp, loaded, undo):
    if out.action == INSTALL:
        _mode, out.mode_reason = attach_new(host, ifname, plan.target_mode,
                                            loaded.pin)
    elif out.action == REPLACE:
        # ip -force: the kernel swaps the program in one step.
        host.attach(ifname, cur.prog["mode"], loaded.pin, replace=True)
    elif out.action == MODE_CHANGE:
        # Native and generic XDP cannot be active at once: detach first,
        # keeping the old program pinned to put it back on a failure.
        old = os.path.join(tmp, "previous")
        old_mode = cur.prog["mode"]
        host.pin_prog_id(cur.prog["id"], old)
        host.detach(ifname, old_mode)
        out.detached_for_mode_change = True
        undo.push(lambda: host.attach(ifname, old_mode, old))
        _mode, reason = attach_new(host, ifname, plan.target_mode,
                                   old if plan.keep_program else loaded.pin)
        out.mode_reason = "%s; the %s program was detached first" % (
            reason, old_mode)


def write_maps(host, cur, plan, pin_dir, undo):
    """sip_ports and settings, in the maps the new program will use."""
    ports_path = os.path.join(pin_dir, "sip_ports")
    if plan.ports_add or plan.ports_clear:
        host.write_ports(ports_path, plan.ports_add, plan.ports_clear)
        undo.push(lambda: host.write_ports(ports_path, plan.ports_clear,
                                           plan.ports_add))
    settings_path = os.path.join(pin_dir, "settings")
    if plan.write_flags:
        host.write_flags(settings_path, plan.flags)
        before = cur.flags or 0
        undo.push(lambda: host.write_flags(settings_path, before))


def apply_absent(host, plan, ifname, pin_dir):
    if plan.detach:
        host.detach(ifname, plan.detach["mode"])
    if plan.remove_prog_pin:
        host.unlink(os.path.join(pin_dir, prog_pin_name(ifname)))
    for name in plan.remove_maps:
        host.unlink(os.path.join(pin_dir, name))
    if plan.remove_pin_dir:
        host.remove_dir(pin_dir)

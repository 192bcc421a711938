# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-host kernel and tool checks behind vos.fastpath.bpf_facts.

Private to this collection. Every probe reads the host as it is and never
changes it (the bpf() probe creates a small map and closes it at once).
Each problem comes with one sentence that says what to do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import ctypes
import fcntl
import json
import os
import platform
import re
import socket
import struct

from . import _abi, _bpf, _files

BTF_PATH = "/sys/kernel/btf/vmlinux"
BPFFS = "/sys/fs/bpf"
JIT_SYSCTL = "/proc/sys/net/core/bpf_jit_enable"
LIBBPF_HEADERS = "/usr/include/bpf"

# Drivers with native (driver-mode) XDP in mainline kernels: native attach is
# expected to work on them; elsewhere `auto` falls back to generic mode.
NATIVE_XDP_DRIVERS = frozenset((
    "bnxt_en", "bond", "dpaa2-eth", "ena", "enetc", "fec", "gve",
    "hv_netvsc", "i40e", "ice", "igb", "igc", "ixgbe", "ixgbevf", "lan966x",
    "mlx4_en", "mlx4_core", "mlx5_core", "mvneta", "mvpp2", "netdevsim",
    "nfp", "nicvf", "qede", "sfc", "stmmac", "tsnep", "tun", "veth",
    "virtio_net", "vmxnet3", "xen-netfront",
))

XDP_MODES = {0: "none", 1: "native", 2: "generic", 3: "offload",
             4: "multi"}

# Package that provides each tool, per distribution family.
PACKAGES = {
    "bpftool": "bpftool (Debian 12), linux-tools-$(uname -r) (Ubuntu) "
               "or bpftool (RHEL 9)",
    "clang": "clang (Debian, Ubuntu, RHEL)",
    "ip": "iproute2 (Debian, Ubuntu) or iproute (RHEL)",
    "libbpf": "libbpf-dev (Debian, Ubuntu) or libbpf-devel (RHEL)",
}

# Where distributions put ip and bpftool, which may not be on a PATH.
TOOL_DIRS = ["/usr/sbin", "/sbin"]

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003


def problem(name, msg):
    return {"name": name, "msg": msg}


def btf_facts(path=BTF_PATH):
    if not os.path.exists(path):
        return {"present": False, "path": path, "sha256": None}
    return {"present": True, "path": path,
            "sha256": _files.sha256_file(path)}


def bpf_syscall_usable():
    """(usable, error): create and close a one-entry array map."""
    try:
        fd = _bpf.create_map(_abi.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    except OSError as e:
        return False, str(e)
    os.close(fd)
    return True, None


def jit_enabled(path=JIT_SYSCTL):
    """True or False; None when the sysctl is not visible, as in a
    container: the kernel shows it in the initial network namespace only."""
    try:
        with open(path) as f:
            return f.read().strip() != "0"
    except OSError:
        return None


def bpffs_mounted(mountpoint=BPFFS, mounts="/proc/mounts"):
    with open(mounts) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1] == mountpoint and \
                    fields[2] == "bpf":
                return True
    return False


def bpffs_mount(path, mounts="/proc/self/mounts"):
    """The bpffs mount point that holds path, or None."""
    best = None
    real = os.path.realpath(path)
    with open(mounts) as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3 or fields[2] != "bpf":
                continue
            point = fields[1]
            if (real == point or real.startswith(point.rstrip("/") + "/")) \
                    and (best is None or len(point) > len(best)):
                best = point
    return best


NOT_ON_BPFFS = ("pin_dir %s is not on bpffs: mount it with 'mount -t bpf bpf "
                "/sys/fs/bpf' or choose a pin_dir under a bpffs mount.")


def _first_version(text):
    match = re.search(r"\d+\.\d+(\.\d+)?", text or "")
    return match.group(0) if match else None


def tool_facts(module):
    """Path and version of clang, bpftool and ip, and the libbpf headers."""
    tools = {}
    for name, args in (("clang", ["--version"]), ("bpftool", ["version"]),
                       ("ip", ["-V"])):
        path = module.get_bin_path(name, opt_dirs=TOOL_DIRS)
        version = None
        if path:
            rc, out, err = module.run_command([path] + args,
                                              environ_update={"LANG": "C"})
            if rc == 0:
                text = out or err
                if name == "ip":
                    text = text.split("iproute2-")[-1]
                version = _first_version(text)
        tools[name] = {"path": path, "version": version}
    tools["libbpf"] = libbpf_headers()
    return tools


def libbpf_headers(include_dir=LIBBPF_HEADERS):
    helpers = os.path.join(include_dir, "bpf_helpers.h")
    if not os.path.exists(helpers):
        return {"path": None, "version": None}
    version = None
    try:
        with open(os.path.join(include_dir, "libbpf_version.h")) as f:
            text = f.read()
        major = re.search(r"LIBBPF_MAJOR_VERSION (\d+)", text)
        minor = re.search(r"LIBBPF_MINOR_VERSION (\d+)", text)
        if major and minor:
            version = "%s.%s" % (major.group(1), minor.group(1))
    except OSError:
        pass
    return {"path": include_dir, "version": version}


def interface_driver(name):
    """The driver name by the ethtool ioctl, or None (no such interface)."""
    buf = array.array("B", struct.pack("I", ETHTOOL_GDRVINFO) + b"\0" * 192)
    addr = buf.buffer_info()[0]
    ifreq = struct.pack("16sP", name.encode()[:15], addr)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError:
        return None
    finally:
        sock.close()
    return buf.tobytes()[4:36].split(b"\0", 1)[0].decode() or None


def links(module, ip_path):
    """`ip -json link show` as a list of dicts."""
    rc, out, err = module.run_command([ip_path, "-json", "link", "show"],
                                      environ_update={"LANG": "C"})
    if rc != 0:
        module.fail_json(msg="Could not list interfaces with ip: %s"
                         % err.strip(), rc=rc, stderr=err)
    return json.loads(out or "[]")


def attached_program(link):
    """What XDP program `ip -json link` shows on this link, or None."""
    xdp = link.get("xdp")
    if not xdp:
        return None
    prog = xdp.get("prog") or {}
    attached = xdp.get("attached") or []
    if not prog and attached:
        prog = attached[0].get("prog") or {}
        mode = attached[0].get("mode", 0)
    else:
        mode = xdp.get("mode", 0)
    return {"id": prog.get("id"), "name": prog.get("name"),
            "tag": prog.get("tag"), "mode": XDP_MODES.get(mode, str(mode))}


def interface_facts(link):
    driver = interface_driver(link["ifname"])
    return {
        "driver": driver,
        "native_xdp_expected": driver in NATIVE_XDP_DRIVERS,
        "mtu": link.get("mtu"),
        "xdp": attached_program(link),
    }


def collect(module, btf_path=BTF_PATH):
    """Every fact, and the list of problems with their remediation."""
    btf = btf_facts(btf_path)
    syscall_ok, syscall_error = bpf_syscall_usable()
    facts = {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "btf": btf,
        "bpf_syscall": syscall_ok,
        "jit_enabled": jit_enabled(),
        "bpffs_mounted": bpffs_mounted(),
        "tools": tool_facts(module),
        "interfaces": {},
    }
    if facts["tools"]["ip"]["path"]:
        for link in links(module, facts["tools"]["ip"]["path"]):
            if link.get("link_type") == "loopback":
                continue
            facts["interfaces"][link["ifname"]] = interface_facts(link)
    facts["problems"] = problems(facts, syscall_error)
    facts["ready"] = not facts["problems"]
    return facts


def problems(facts, syscall_error=None):
    found = []
    if not facts["btf"]["present"]:
        found.append(problem(
            "btf", "The kernel has no BTF at %s: boot a kernel built with "
            "CONFIG_DEBUG_INFO_BTF=y (the stock kernels of Debian 11+, "
            "Ubuntu 20.10+ and RHEL 8.2+ have it)." % facts["btf"]["path"]))
    if not facts["bpf_syscall"]:
        found.append(problem(
            "bpf_syscall", "The bpf() system call failed (%s): run as root "
            "(or with CAP_BPF and CAP_NET_ADMIN) on a kernel built with "
            "CONFIG_BPF_SYSCALL=y." % syscall_error))
    if facts["jit_enabled"] is False:
        found.append(problem(
            "jit", "The BPF JIT is off: enable it with "
            "'sysctl -w net.core.bpf_jit_enable=1'."))
    if not facts["bpffs_mounted"]:
        found.append(problem(
            "bpffs", "bpffs is not mounted on /sys/fs/bpf: mount it with "
            "'mount -t bpf bpf /sys/fs/bpf' (the prereqs role makes it "
            "persistent)."))
    for tool in ("bpftool", "ip"):
        if not facts["tools"][tool]["path"]:
            found.append(problem(
                tool, "%s is not installed: install the package %s."
                % (tool, PACKAGES[tool])))
    return found


def build_problems(facts):
    """What a build host needs on top of a runtime host."""
    found = []
    if not facts["tools"]["clang"]["path"]:
        found.append(problem("clang", "clang is not installed: install the "
                             "package %s." % PACKAGES["clang"]))
    if not facts["tools"]["libbpf"]["path"]:
        found.append(problem("libbpf", "The libbpf headers are missing: "
                             "install the package %s." % PACKAGES["libbpf"]))
    return found


def program_map_ids(prog_id):
    """Ids of the maps a loaded program uses (empty if it is gone)."""
    try:
        fd = _bpf.prog_fd_by_id(prog_id)
    except OSError:
        return []
    try:
        count = _bpf.prog_info(fd).nr_map_ids
        ids = (ctypes.c_uint32 * max(count, 1))()
        _bpf.prog_info(fd, ids)
        return list(ids[:count])
    finally:
        os.close(fd)


def interfaces_using_map(module, ip_path, map_id):
    """Where an XDP program that uses the map is attached:
    [{interface, id, name, tag, mode}]."""
    found = []
    for link in links(module, ip_path):
        prog = attached_program(link)
        if prog and prog["id"] and map_id in program_map_ids(prog["id"]):
            entry = dict(prog)
            entry["interface"] = link["ifname"]
            found.append(entry)
    return found

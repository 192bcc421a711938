# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-host kernel and tool checks behind vos.fastpath.bpf_facts.

Private to this collection. Every probe reads the host as it is and never
changes it (the bpf() probe creates a small map and closes it at once).
Each problem comes with one sentence that says what to do.
"""

from __future__ import absolute_import, annotations, division, print_function

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

from . import _abi, _bpf, _bpf_link, _files
from ._runner import PACKAGES, Runner

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

# XDP programs attach through a BPF link from this kernel on; before it
# through netlink only.
XDP_LINK_KERNEL = (5, 9)

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003


def problem(name: str, msg: str) -> dict[str, str]:
    return {"name": name, "msg": msg}


def btf_facts(path: str = BTF_PATH) -> dict:
    if not os.path.exists(path):
        return {"present": False, "path": path, "sha256": None}
    return {"present": True, "path": path,
            "sha256": _files.sha256_file(path)}


def bpf_syscall_usable() -> tuple[bool, str | None]:
    """(usable, error): create and close a one-entry array map."""
    try:
        fd = _bpf.create_map(_abi.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    except OSError as e:
        return False, str(e)
    os.close(fd)
    return True, None


def jit_enabled(path: str = JIT_SYSCTL) -> bool | None:
    """True or False; None when the sysctl is not visible, as in a
    container: the kernel shows it in the initial network namespace only."""
    try:
        with open(path) as f:
            return f.read().strip() != "0"
    except OSError:
        return None


def bpffs_mounted(mountpoint: str = BPFFS, mounts: str = "/proc/mounts"
                  ) -> bool:
    with open(mounts) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1] == mountpoint and \
                    fields[2] == "bpf":
                return True
    return False


def bpffs_mount(path: str, mounts: str = "/proc/self/mounts"
                ) -> str | None:
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


def _first_version(text: str | None) -> str | None:
    match = re.search(r"\d+\.\d+(\.\d+)?", text or "")
    return match.group(0) if match else None


def tool_facts(runner: Runner) -> dict:
    """Path and version of clang, bpftool and ip, and the libbpf headers."""
    tools = {}
    for name, args in (("clang", ["--version"]), ("bpftool", ["version"]),
                       ("ip", ["-V"])):
        path = runner.find(name)
        version = None
        if path:
            rc, out, err = runner.try_run([path] + args)
            if rc == 0:
                text = out or err
                if name == "ip":
                    text = text.split("iproute2-")[-1]
                version = _first_version(text)
        tools[name] = {"path": path, "version": version}
    tools["libbpf"] = libbpf_headers()
    return tools


def libbpf_headers(include_dir: str = LIBBPF_HEADERS
                   ) -> dict[str, str | None]:
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


def interface_driver(name: str) -> str | None:
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


def links(runner: Runner, ip_path: str) -> list[dict]:
    """`ip -json link show` as a list of dicts."""
    out, _err = runner.run(
        [ip_path, "-json", "link", "show"],
        lambda rc, out, err: "Could not list the interfaces with ip (%s): "
        "check that iproute2 works on this host." % err.strip())
    return json.loads(out or "[]")


def attached_program(link: dict) -> dict | None:
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
    name = prog.get("name")
    if name is None and prog.get("id"):
        name = program_name(prog["id"])
    return {"id": prog.get("id"), "name": name,
            "tag": prog.get("tag"), "mode": XDP_MODES.get(mode, str(mode))}


def program_name(prog_id: int) -> str | None:
    """The name the kernel keeps for a loaded program (None if it is
    gone): iproute2 before 5.10 (Debian 11's) leaves it out of
    `ip -json link`."""
    try:
        fd = _bpf.prog_fd_by_id(prog_id)
    except OSError:
        return None
    try:
        return _bpf.prog_info(fd).name.decode() or None
    finally:
        os.close(fd)


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release such as 6.1.0-26-amd64."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def xdp_link_support(release: str | None = None) -> bool:
    """Whether the kernel attaches XDP programs through BPF links."""
    return kernel_version(release or platform.release()) >= XDP_LINK_KERNEL


def xdp_links() -> list[dict]:
    """[{id, prog_id, ifindex}] of every XDP link attached on the host.
    Link ids are global while an ifindex is per network namespace: match
    a link by ifindex and program id (xdp_link_of). A detached link
    (ifindex 0) is left out; a kernel without links has none."""
    found = []
    link_id: int | None = 0
    while True:
        try:
            link_id = _bpf_link.link_next_id(link_id or 0)
        except OSError:
            return found
        if link_id is None:
            return found
        try:
            fd = _bpf_link.link_fd_by_id(link_id)
        except OSError:
            continue        # gone meanwhile
        try:
            info = _bpf_link.link_info(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
        if info.type == _bpf_link.BPF_LINK_TYPE_XDP and info.ifindex:
            found.append({"id": info.id, "prog_id": info.prog_id,
                          "ifindex": info.ifindex})


def xdp_link_of(links: list[dict], ifindex: int | None,
                prog: dict | None) -> dict | None:
    """The link of xdp_links() that attaches prog ({id, ...} as
    attached_program() reads it) on ifindex, or None: then prog, if any,
    is attached through netlink."""
    if not prog or not ifindex:
        return None
    return next((found for found in links if found["ifindex"] == ifindex
                 and found["prog_id"] == prog["id"]), None)


def attach_method(link: dict | None, prog: dict | None) -> str | None:
    """link, netlink, or None when no program is attached."""
    if not prog:
        return None
    return "link" if link else "netlink"


def interface_facts(link: dict, links: list[dict] | None = None) -> dict:
    """links: xdp_links(), read once for every interface."""
    driver = interface_driver(link["ifname"])
    prog = attached_program(link)
    xdp_link = xdp_link_of(links or [], link.get("ifindex"), prog)
    return {
        "driver": driver,
        "native_xdp_expected": driver in NATIVE_XDP_DRIVERS,
        "mtu": link.get("mtu"),
        "xdp": prog,
        "attach_method": attach_method(xdp_link, prog),
        "xdp_link_id": xdp_link["id"] if xdp_link else None,
    }


def collect(runner: Runner, btf_path: str = BTF_PATH) -> dict:
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
        "tools": tool_facts(runner),
        "xdp_link_support": xdp_link_support(),
        "interfaces": {},
    }
    if facts["tools"]["ip"]["path"]:
        attached = xdp_links() if syscall_ok else []
        for link in links(runner, facts["tools"]["ip"]["path"]):
            if link.get("link_type") == "loopback":
                continue
            facts["interfaces"][link["ifname"]] = interface_facts(
                link, attached)
    facts["problems"] = problems(facts, syscall_error)
    facts["ready"] = not facts["problems"]
    return facts


def problems(facts: dict, syscall_error: str | None = None
             ) -> list[dict[str, str]]:
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


def build_problems(facts: dict) -> list[dict[str, str]]:
    """What a build host needs on top of a runtime host."""
    found = []
    if not facts["tools"]["clang"]["path"]:
        found.append(problem("clang", "clang is not installed: install the "
                             "package %s." % PACKAGES["clang"]))
    if not facts["tools"]["libbpf"]["path"]:
        found.append(problem("libbpf", "The libbpf headers are missing: "
                             "install the package %s." % PACKAGES["libbpf"]))
    return found


def program_map_ids(prog_id: int) -> list[int]:
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


def interfaces_using_map(runner: Runner, ip_path: str, map_id: int
                         ) -> list[dict]:
    """Where an XDP program that uses the map is attached:
    [{interface, id, name, tag, mode}]."""
    found = []
    for link in links(runner, ip_path):
        prog = attached_program(link)
        if prog and prog["id"] and map_id in program_map_ids(prog["id"]):
            entry = dict(prog)
            entry["interface"] = link["ifname"]
            found.append(entry)
    return found

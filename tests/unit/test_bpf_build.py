"""bpf_build with the tool boundary mocked: clang is a fake
run_command, files are real ones in tmp_path. The ELF reader runs on
hand-made objects and on the real build/sip_logic.bpf.o."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from elftools.elf.elffile import ELFFile

from plugins.module_utils import _build, _elf

REPO = Path(__file__).resolve().parents[2]
SPEC_MAPS = ["sip_ports", "allow_v4", "allow_v6", "block_v4", "block_v6",
             "settings", "stats", "proto_stats", "xsks_map", "stats_ext",
             "limits", "rate_state", "scanner_sigs", "scanner_hits",
             "bans_v2", "pardons", "rate_limited", "block_v4_hosts",
             "block_v6_hosts"]
TOOLS = {"clang": "/usr/bin/clang"}


# --- a hand-made BPF object -------------------------------------------------

def make_elf(sections: dict[str, list[str]], maps: list[str],
             order: str = "<", machine: int = 247) -> bytes:
    """An ELF64 relocatable object: each executable section with its
    global functions (8 bytes each), .maps with its map objects."""
    names = ["", *sections, ".maps", ".symtab", ".strtab", ".shstrtab"]
    shstrtab, strtab = b"\0", b"\0"
    name_offsets = {}
    for name in names[1:]:
        name_offsets[name] = len(shstrtab)
        shstrtab += name.encode() + b"\0"
    symbols = [struct.pack(order + "IBBHQQ", 0, 0, 0, 0, 0, 0),
               struct.pack(order + "IBBHQQ", 0, 3, 0, 1, 0, 0)]  # SECTION
    bodies = []
    for index, funcs in enumerate(sections.values(), start=1):
        for slot, func in enumerate(funcs):
            symbols.append(struct.pack(order + "IBBHQQ", len(strtab),
                                       0x12, 0, index, 8 * slot, 8))
            strtab += func.encode() + b"\0"
        bodies.append(b"\x95" + b"\0" * (8 * max(len(funcs), 1) - 1))
    maps_index = len(sections) + 1
    for slot, name in enumerate(maps):
        symbols.append(struct.pack(order + "IBBHQQ", len(strtab), 0x11, 0,
                                   maps_index, 32 * slot, 32))
        strtab += name.encode() + b"\0"
    bodies += [b"\0" * 32 * len(maps), b"".join(symbols), strtab, shstrtab]
    kinds = [1] * (len(sections) + 1) + [2, 3, 3]
    flags = [6] * len(sections) + [3, 0, 0, 0]
    headers = [b"\0" * 64]
    offset = 64
    for i, body in enumerate(bodies):
        link = len(names) - 2 if kinds[i] == 2 else 0
        headers.append(struct.pack(
            order + "IIQQQQIIQQ", name_offsets[names[i + 1]], kinds[i],
            flags[i], 0, offset, len(body), link, 2, 8,
            24 if kinds[i] == 2 else 0))
        offset += len(body)
    ident = b"\x7fELF\x02" + (b"\x01" if order == "<" else b"\x02")
    header = ident + b"\x01" + b"\0" * 9 + struct.pack(
        order + "HHIQQQIHHHHHH", 1, machine, 1, 0, 0, offset, 0, 64, 0, 0,
        64, len(names), len(names) - 1)
    return header + b"".join(bodies) + b"".join(headers)


FAKE_OBJECT = make_elf({".text": ["helper"], "xdp": ["sip_xdp_prog"]},
                       ["sip_ports", "stats"])


@pytest.mark.parametrize("order", ["<", ">"])
def test_elf_reader_names_programs_and_maps(order: str) -> None:
    data = make_elf({".text": ["sub_a", "sub_b"], "xdp": ["prog_x"],
                     "tc/ingress": ["prog_t1", "prog_t2"]},
                    ["m1", "m2", "m3"], order)
    assert _elf.elf_names(data) == {
        "programs": [{"name": "prog_x", "section": "xdp"},
                     {"name": "prog_t1", "section": "tc/ingress"},
                     {"name": "prog_t2", "section": "tc/ingress"}],
        "maps": ["m1", "m2", "m3"]}


@pytest.mark.parametrize("data, why", [
    (b"#!/bin/sh\n" * 10, "not an ELF file"),
    (FAKE_OBJECT[:200], "truncated"),
    (make_elf({"xdp": ["p"]}, [], machine=62), "is not BPF"),
])
def test_elf_reader_rejects_what_is_not_a_bpf_object(data: bytes,
                                                     why: str) -> None:
    with pytest.raises(ValueError, match=why):
        _elf.elf_names(data)


@pytest.fixture(scope="module")
def real_object() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    return REPO / "build" / "sip_logic.bpf.o"


def test_elf_reader_on_the_real_object(real_object: Path) -> None:
    info = _elf.object_info(str(real_object))
    assert info["programs"] == [{"name": "sip_xdp_prog", "section": "xdp"}]
    assert sorted(info["maps"]) == sorted(SPEC_MAPS)
    assert len(info["maps"]) == len(SPEC_MAPS)
    assert info["size"] == real_object.stat().st_size


def test_global_subprograms_of_the_real_object_are_not_programs(
        real_object: Path) -> None:
    with real_object.open("rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_index(".text")
        subprograms = [
            s.name for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC"
            and s["st_info"]["bind"] == "STB_GLOBAL"
            and s["st_shndx"] == text]
    assert subprograms, "the object has no global subprogram to ignore"
    names = [p["name"] for p in
             _elf.object_info(str(real_object))["programs"]]
    assert not set(subprograms) & set(names)


# --- flags and clang -M -----------------------------------------------------

def test_compile_command_is_the_one_of_the_spec() -> None:
    flags = _build.compile_flags(["bpf"], [])
    argv = _build.compile_argv("clang", flags, "bpf/sip_logic.bpf.c",
                               "build/sip_logic.bpf.o")
    assert " ".join(argv) == (
        "clang -target bpf -O2 -mcpu=v3 -g "
        "-I bpf -I /usr/include "
        "-Wall -Wno-unused -Wno-pointer-sign "
        "-c bpf/sip_logic.bpf.c -o build/sip_logic.bpf.o")


def test_extra_cflags_come_last() -> None:
    flags = _build.compile_flags([], ["-DX=1"])
    assert flags[-1] == "-DX=1"


def test_clang_make_rule_is_parsed_with_continuations_and_escapes() -> None:
    rule = ("prog.o: /src/prog.bpf.c /src/my\\ dir/a.h \\\n"
            "  /out/gen.h /usr/include/bpf/bpf_helpers.h \\\n"
            "  /src/cost$$.h\n")
    assert _build.parse_deps(rule) == [
        "/src/prog.bpf.c", "/src/my dir/a.h", "/out/gen.h",
        "/usr/include/bpf/bpf_helpers.h", "/src/cost$.h"]


# --- the module with fake tools ---------------------------------------------

class FakeTools:
    """clang as run_command sees it."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.version = "Debian clang version 14.0.6\nTarget: bpf\n"
        self.compile_error: str | None = None

    def __call__(self, argv: list[str], *args: Any,
                 **kwargs: Any) -> tuple[int, str, str]:
        assert isinstance(argv, list), "tools must run as an argv list"
        assert kwargs["environ_update"]["LANG"] == "C"
        self.calls.append(argv)
        if argv[1:] == ["--version"]:
            return 0, self.version, ""
        src = argv[-1] if "-M" in argv else argv[argv.index("-c") + 1]
        if "-M" in argv:
            headers = sorted(str(h) for h in Path(src).parent.glob("*.h"))
            return 0, "prog.o: %s \\\n %s\n" % (src, " ".join(headers)), ""
        if self.compile_error:
            return 1, "", self.compile_error
        Path(argv[argv.index("-o") + 1]).write_bytes(FAKE_OBJECT)
        return 0, "", ""

    def compiled(self) -> bool:
        return any("-c" in argv for argv in self.calls)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Any]:
    src = tmp_path / "src"
    out = tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "prog.bpf.c").write_text('#include "fp_abi.h"\n')
    (src / "fp_abi.h").write_text("#define FP_ABI 1\n")
    return {"src": src, "out": out, "args": {
        "src": str(src / "prog.bpf.c"), "dest": str(out / "prog.bpf.o"),
        "include_dirs": [str(src)]}}


def run_main(args: dict[str, Any], tools: FakeTools, *, check: bool = False,
             diff: bool = False, found: dict[str, str] | None = None
             ) -> dict[str, Any]:
    from ansible_collections.vos.fastpath.plugins.modules import bpf_build

    found = TOOLS if found is None else found
    tools.calls.clear()
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "run_command", tools), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path",
                              lambda _self, name, *a, **k: found.get(name)), \
            mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit):
        bpf_build.main()
    text = "".join(call.args[0] for call in stdout.write.call_args_list)
    return json.loads(text)


def test_first_run_builds_and_second_is_unchanged(tree: dict) -> None:
    tools = FakeTools()
    first = run_main(tree["args"], tools)
    assert first["changed"] is True, first
    assert tools.compiled()
    dest = tree["out"] / "prog.bpf.o"
    assert dest.read_bytes() == FAKE_OBJECT
    assert "vmlinux_h" not in first
    assert first["programs"] == [{"name": "sip_xdp_prog", "section": "xdp"}]
    assert first["maps"] == ["sip_ports", "stats"]
    assert first["size"] == len(FAKE_OBJECT)
    stamp = json.loads((tree["out"] / "prog.bpf.o.inputs.json").read_text())
    assert sorted(stamp["files"]) == [str(tree["src"] / "fp_abi.h"),
                                      tree["args"]["src"]]
    assert stamp["sha256"] == first["sha256"]

    second = run_main(tree["args"], tools)
    assert second["changed"] is False, second["reasons"]
    assert second["reasons"] == []
    assert not tools.compiled()
    assert second["sha256"] == first["sha256"]
    assert second["programs"] == first["programs"]


def test_changed_header_triggers_a_rebuild(tree: dict) -> None:
    tools = FakeTools()
    run_main(tree["args"], tools)
    (tree["src"] / "fp_abi.h").write_text("#define FP_ABI 2\n")
    result = run_main(tree["args"], tools)
    assert result["changed"] is True
    assert result["reasons"] == ["%s changed" % (tree["src"] / "fp_abi.h")]
    assert tools.compiled()


def test_new_header_triggers_a_rebuild(tree: dict) -> None:
    tools = FakeTools()
    run_main(tree["args"], tools)
    (tree["src"] / "fp_new.h").write_text("\n")
    result = run_main(tree["args"], tools)
    assert result["reasons"] == [
        "%s is a new input" % (tree["src"] / "fp_new.h")]


def test_changed_flags_trigger_a_rebuild(tree: dict) -> None:
    tools = FakeTools()
    run_main(tree["args"], tools)
    result = run_main(dict(tree["args"], cflags=["-DFP_DEBUG=1"]), tools)
    assert result["changed"] is True
    assert result["reasons"] == ["the compile flags changed"]
    assert "-DFP_DEBUG=1" in result["cmd"]


def test_new_compiler_version_triggers_a_rebuild(tree: dict) -> None:
    tools = FakeTools()
    run_main(tree["args"], tools)
    tools.version = "Debian clang version 16.0.6\n"
    result = run_main(tree["args"], tools)
    assert result["reasons"] == ["the compiler version changed"]


def test_a_clang_older_than_12_is_refused_before_it_compiles(
        tree: dict) -> None:
    tools = FakeTools()
    tools.version = "Debian clang version 11.0.1-2\nTarget: bpf\n"
    result = run_main(tree["args"], tools)
    assert result["failed"] is True
    assert result["msg"] == (
        "/usr/bin/clang is clang 11.0.1, and the program needs clang 12 or "
        "later (for its atomic compare-and-exchange): build on a host with "
        "a newer clang (fastpath_build_host), or set clang.")
    assert not tools.compiled()
    assert list(tree["out"].iterdir()) == []


@pytest.mark.parametrize("option, value", [
    ("btf", "/nonexistent/vmlinux"), ("vmlinux_h", "/tmp/vmlinux.h"),
    ("bpftool", "bpftool")])
def test_the_options_of_the_kernel_header_are_ignored(
        tree: dict, option: str, value: str) -> None:
    """Their deprecation warning is checked through ansible-playbook
    (tests/integration/test_bpf_build.py)."""
    tools = FakeTools()
    result = run_main(dict(tree["args"], **{option: value}), tools)
    assert result["changed"] is True and not result.get("failed")
    assert all(argv[0] == TOOLS["clang"] for argv in tools.calls)


def test_object_changed_behind_our_back_is_rebuilt(tree: dict) -> None:
    tools = FakeTools()
    run_main(tree["args"], tools)
    (tree["out"] / "prog.bpf.o").write_bytes(b"not the object")
    result = run_main(tree["args"], tools)
    assert result["reasons"] == [
        "the object differs from the one last built"]
    assert (tree["out"] / "prog.bpf.o").read_bytes() == FAKE_OBJECT


def test_force_rebuilds_unchanged_inputs(tree: dict) -> None:
    tools = FakeTools()
    run_main(tree["args"], tools)
    result = run_main(dict(tree["args"], force=True), tools)
    assert result["changed"] is True
    assert result["reasons"] == ["force is set"]
    assert tools.compiled()


def test_check_mode_writes_nothing_and_says_why(tree: dict) -> None:
    tools = FakeTools()
    result = run_main(tree["args"], tools, check=True, diff=True)
    assert result["changed"] is True
    assert list(tree["out"].iterdir()) == []
    assert not tools.compiled()
    assert "the object does not exist" in result["reasons"]
    assert result["diff"]["before"] == {"sha256": None}
    assert "sha256" not in result


def test_check_mode_on_a_built_object_reports_no_change(tree: dict) -> None:
    tools = FakeTools()
    built = run_main(tree["args"], tools)
    result = run_main(tree["args"], tools, check=True)
    assert result["changed"] is False
    assert result["sha256"] == built["sha256"]


def test_diff_shows_the_sha256_before_and_after(tree: dict) -> None:
    tools = FakeTools()
    first = run_main(tree["args"], tools)
    (tree["src"] / "fp_abi.h").write_text("#define FP_ABI 3\n")
    result = run_main(tree["args"], tools, diff=True)
    assert result["diff"]["before"] == {"sha256": first["sha256"]}
    assert result["diff"]["after"]["built_because"] == result["reasons"]


def test_missing_clang_names_the_package(tree: dict) -> None:
    result = run_main(tree["args"], FakeTools(), found={})
    assert result["failed"] is True
    assert "install the package clang (Debian" in result["msg"]
    assert list(tree["out"].iterdir()) == []


def test_missing_source_says_so(tree: dict) -> None:
    result = run_main(dict(tree["args"], src=str(tree["src"] / "none.c")),
                      FakeTools())
    assert result["failed"] is True
    assert result["msg"].startswith("The source %s does not exist"
                                    % (tree["src"] / "none.c"))


def test_missing_dest_directory_says_to_create_it(tree: dict) -> None:
    dest = tree["out"] / "sub" / "prog.bpf.o"
    result = run_main(dict(tree["args"], dest=str(dest)), FakeTools())
    assert result["failed"] is True
    assert "create it first" in result["msg"]


def test_compile_error_returns_the_compiler_message_and_keeps_dest(
        tree: dict) -> None:
    tools = FakeTools()
    run_main(tree["args"], tools)
    before = sorted(p.name for p in tree["out"].iterdir())
    (tree["src"] / "prog.bpf.c").write_text("int x(void) { return }\n")
    tools.compile_error = ("prog.bpf.c:1:22: error: expected expression\n"
                           "1 error generated.\n")
    result = run_main(tree["args"], tools)
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["msg"].startswith("clang could not compile %s: "
                                    % tree["args"]["src"])
    assert "error: expected expression" in result["msg"]
    assert result["stderr"] == tools.compile_error
    assert result["rc"] == 1
    assert (tree["out"] / "prog.bpf.o").read_bytes() == FAKE_OBJECT
    assert sorted(p.name for p in tree["out"].iterdir()) == before

"""The Python mirror of the ABI (plugins/module_utils/_abi.py) against the
built object and the C header.

Struct layouts and map definitions are read from the BTF of
build/sip_logic.bpf.o (`bpftool -j btf dump file`), the program and its
license from the ELF file, and the header's constants and struct layouts
from tiny C programs compiled against bpf/fp_abi.h (the only source of the
layouts of retired maps, which the object no longer holds). Nothing here
needs root.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from plugins.module_utils import _abi
from tests.dataplane import harness

HEADER = harness.REPO / "bpf" / "fp_abi.h"
CC = shutil.which("gcc") or shutil.which("clang") or "gcc"

# Licenses the kernel's license_is_gpl_compatible() accepts.
GPL_COMPATIBLE = frozenset((
    "GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
    "Dual MIT/GPL", "Dual MPL/GPL"))

# The map table of docs/dataplane.md: the key and value types by name.
SPEC_MAP_TYPES = {
    "sip_ports": ("__u32", "__u8"),
    "allow_v4": ("fp_lpm_v4_key", "fp_entry"),
    "allow_v6": ("fp_lpm_v6_key", "fp_entry"),
    "block_v4": ("fp_lpm_v4_key", "fp_entry"),
    "block_v6": ("fp_lpm_v6_key", "fp_entry"),
    "settings": ("__u32", "fp_settings"),
    "stats": ("__u32", "fp_counter"),
    "proto_stats": ("__u32", "fp_counter"),
    "xsks_map": ("__u32", "__u32"),
    "stats_ext": ("__u32", "fp_counter"),
    "limits": ("__u32", "fp_limits"),
    "rate_state": ("fp_source", "fp_rate"),
    "scanner_sigs": ("__u32", "fp_signature"),
    "scanner_hits": ("__u32", "fp_counter"),
    "bans_v2": ("fp_source", "fp_ban_v2"),
    "pardons": ("fp_source", "fp_pardon"),
    "rate_limited": ("__u32", "fp_counter"),
    "block_v4_hosts": ("fp_addr_v4", "fp_entry"),
    "block_v6_hosts": ("fp_addr_v6", "fp_entry"),
}
# The retired maps of docs/dataplane.md: no program declares them.
RETIRED_MAP_TYPES = {
    "bans": ("fp_source", "fp_ban"),
}
# Structs that only retired maps use: in the header, not in the object.
RETIRED_STRUCTS = frozenset(
    t for pair in RETIRED_MAP_TYPES.values() for t in pair
    if t.startswith("fp_")) - frozenset(
    t for pair in SPEC_MAP_TYPES.values() for t in pair)

# Fields of a BTF map definition that are numbers (`__uint(name, n)`:
# a pointer to an array of n elements) and those that are types
# (`__type(name, T)`: a pointer to T).
NUMBER_FIELDS = frozenset(("type", "key_size", "value_size", "max_entries",
                           "map_flags"))
TYPE_FIELDS = frozenset(("key", "value"))

# Data sections that libbpf turns into maps of their own.
INTERNAL_MAP_SECTIONS = (".data", ".rodata", ".bss", ".kconfig", ".ksyms")

# _abi's struct.Struct formats for the structs of _abi.STRUCTS.
STRUCT_FORMATS = {
    "fp_lpm_v4_key": _abi.LPM_V4_KEY,
    "fp_lpm_v6_key": _abi.LPM_V6_KEY,
    "fp_addr_v4": _abi.ADDR_V4,
    "fp_addr_v6": _abi.ADDR_V6,
    "fp_entry": _abi.ENTRY,
    "fp_settings": _abi.SETTINGS,
    "fp_counter": _abi.COUNTER,
    "fp_budget": _abi.BUDGET,
    "fp_limits": _abi.LIMITS,
    "fp_source": _abi.SOURCE,
    "fp_rate": _abi.RATE,
    "fp_ban": _abi.BAN,
    "fp_ban_v2": _abi.BAN_V2,
    "fp_pardon": _abi.PARDON,
    "fp_signature": _abi.SIGNATURE,
}

Type = dict[str, Any]

# BTF kinds that only qualify or rename another type.
ALIASES = frozenset(("TYPEDEF", "CONST", "VOLATILE", "RESTRICT",
                     "TYPE_TAG"))


class Btf:
    """The types of one BTF dump, by id, with sizes resolved."""

    def __init__(self, types: list[Type]) -> None:
        self.types = {t["id"]: t for t in types}

    def get(self, type_id: int) -> Type:
        return self.types[type_id]

    def strip(self, type_id: int) -> Type:
        """The type behind typedefs and qualifiers."""
        t = self.get(type_id)
        while t["kind"] in ALIASES:
            t = self.get(t["type_id"])
        return t

    def size(self, type_id: int) -> int:
        t = self.strip(type_id)
        if t["kind"] == "ARRAY":
            return t["nr_elems"] * self.size(t["type_id"])
        if t["kind"] == "PTR":
            return 8
        return t["size"]

    def name(self, type_id: int) -> str:
        """The name a declaration uses: a typedef's or the type's own."""
        t = self.get(type_id)
        while t["kind"] in ALIASES - {"TYPEDEF"}:
            t = self.get(t["type_id"])
        return t["name"]

    def named(self, kind: str) -> dict[str, Type]:
        return {t["name"]: t for t in self.types.values()
                if t["kind"] == kind}

    def datasecs(self) -> dict[str, list[Type]]:
        return {sec["name"]: [self.get(v["type_id"]) for v in sec["vars"]]
                for sec in self.named("DATASEC").values()}


def map_definition(btf: Btf, var: Type) -> dict[str, int | str]:
    """The fields of one `.maps` variable: numbers, and for key and value
    their size (key_size, value_size) and type name (key_type, ...)."""
    struct = btf.strip(var["type_id"])
    assert struct["kind"] == "STRUCT", var
    fields: dict[str, int | str] = {}
    for member in struct["members"]:
        name = member["name"]
        pointer = btf.get(member["type_id"])
        assert pointer["kind"] == "PTR", (var["name"], name)
        if name in TYPE_FIELDS:
            fields[name + "_size"] = btf.size(pointer["type_id"])
            fields[name + "_type"] = btf.name(pointer["type_id"])
        else:
            assert name in NUMBER_FIELDS, (
                "%s: map field %r is not in the ABI mirror"
                % (var["name"], name))
            array = btf.strip(pointer["type_id"])
            assert array["kind"] == "ARRAY", (var["name"], name)
            fields[name] = array["nr_elems"]
    return fields


# Fixtures.


@pytest.fixture(scope="module")
def obj() -> Path:
    return harness.build()


@pytest.fixture(scope="module")
def btf(obj: Path) -> Btf:
    dump = subprocess.run(
        [harness.BPFTOOL, "-j", "btf", "dump", "file", str(obj)],
        check=True, capture_output=True, text=True)
    return Btf(json.loads(dump.stdout)["types"])


@pytest.fixture(scope="module")
def elf(obj: Path) -> ELFFile:
    return ELFFile(io.BytesIO(obj.read_bytes()))


def _symbols(elf: ELFFile) -> list[Any]:
    symtab = elf.get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection)
    return list(symtab.iter_symbols())


def _section_name(elf: ELFFile, symbol: Any) -> str:
    index = symbol["st_shndx"]
    if not isinstance(index, int):   # SHN_UNDEF, SHN_ABS...
        return str(index)
    return elf.get_section(index).name


# Structs.


@pytest.mark.parametrize("name", sorted(set(_abi.STRUCTS) - RETIRED_STRUCTS))
def test_struct_layout_matches_btf(btf: Btf, name: str) -> None:
    members, size = _abi.STRUCTS[name]
    structs = btf.named("STRUCT")
    assert name in structs, "struct %s is not in the object's BTF" % name
    struct = structs[name]
    assert "bitfield_size" not in str(struct["members"])
    built = [(m["name"], m["bits_offset"] // 8, btf.size(m["type_id"]))
             for m in struct["members"]]
    assert (built, struct["size"]) == (members, size)


@pytest.mark.parametrize("name", sorted(_abi.STRUCTS))
def test_struct_format_packs_the_struct_size(name: str) -> None:
    assert STRUCT_FORMATS[name].size == _abi.STRUCTS[name][1]


def _nested_structs(btf: Btf, name: str) -> set[str]:
    """The structs that the members of struct name are made of."""
    found = set()
    for member in btf.named("STRUCT")[name]["members"]:
        t = btf.strip(member["type_id"])
        while t["kind"] == "ARRAY":
            t = btf.strip(t["type_id"])
        if t["kind"] == "STRUCT":
            found |= {t["name"]} | _nested_structs(btf, t["name"])
    return found


def test_every_abi_struct_is_mirrored(btf: Btf) -> None:
    """The structs the spec's map tables name, and those they are made of
    (fp_budget in fp_limits), are all in _abi.STRUCTS; those of retired
    maps only are not in the object."""
    named = {t for pair in SPEC_MAP_TYPES.values() for t in pair
             if t.startswith("fp_")}
    nested = set().union(*(_nested_structs(btf, n) for n in named))
    assert "fp_budget" in nested
    assert RETIRED_STRUCTS == {"fp_ban"}
    assert named | nested | RETIRED_STRUCTS == set(_abi.STRUCTS) == \
        set(STRUCT_FORMATS)
    assert RETIRED_STRUCTS.isdisjoint(btf.named("STRUCT"))


@pytest.fixture(scope="module")
def header_layouts(tmp_path_factory: pytest.TempPathFactory
                   ) -> dict[str, tuple[list[tuple[str, int, int]], int]]:
    """Every struct of _abi.STRUCTS as a C program compiled against the
    header lays it out: {name: ([(member, offset, size)], size)}."""
    lines = []
    for name, (members, _size) in sorted(_abi.STRUCTS.items()):
        for member, _offset, _msize in members:
            lines.append(
                '\tprintf("%s %s %%zu %%zu\\n", offsetof(struct %s, %s), '
                "sizeof(((struct %s *)0)->%s));"
                % (name, member, name, member, name, member))
        lines.append('\tprintf("%s - 0 %%zu\\n", sizeof(struct %s));'
                     % (name, name))
    tmp = tmp_path_factory.mktemp("layouts")
    source = tmp / "layouts.c"
    source.write_text(
        "#include <stddef.h>\n"
        "#include <stdio.h>\n"
        "#include <linux/types.h>\n"
        '#include "fp_abi.h"\n\n'
        "int main(void)\n{\n" + "\n".join(lines) + "\n\treturn 0;\n}\n")
    program = tmp / "layouts"
    _run(CC, "-Wall", "-Werror", "-I", str(HEADER.parent), "-o",
         str(program), str(source))
    found: dict[str, tuple[list[tuple[str, int, int]], int]] = {}
    for line in _run(str(program)).splitlines():
        name, member, offset, size = line.split()
        members, _total = found.setdefault(name, ([], 0))
        if member == "-":
            found[name] = (members, int(size))
        else:
            members.append((member, int(offset), int(size)))
    return found


@pytest.mark.parametrize("name", sorted(_abi.STRUCTS))
def test_struct_layout_matches_the_c_header(
        header_layouts: dict[str, tuple[list[tuple[str, int, int]], int]],
        name: str) -> None:
    """The header's layout, retired structs included; the object's BTF
    cannot show one that no map uses any more."""
    assert header_layouts[name] == _abi.STRUCTS[name]


def _format_items(layout: struct.Struct) -> dict[int, int]:
    """offset -> size of each item a struct.Struct format packs."""
    items, offset = {}, 0
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", layout.format):
        if code == "s":
            sizes = [int(count or 1)]
        else:
            sizes = [struct.calcsize("=" + code)] * int(count or 1)
        for size in sizes:
            items[offset] = size
            offset += size
    return items


@pytest.mark.parametrize("name", sorted(_abi.STRUCTS))
def test_struct_format_items_start_at_member_offsets(name: str) -> None:
    """Each member of the struct is packed by format items that start at
    its offset and cover its size, with no item across two members."""
    items = _format_items(STRUCT_FORMATS[name])
    members, _size = _abi.STRUCTS[name]
    for member, offset, size in members:
        assert offset in items, (name, member)
        covered = sum(n for at, n in items.items()
                      if offset <= at < offset + size)
        assert covered == size, (name, member)


# Maps.


@pytest.mark.parametrize("name", sorted(_abi.MAPS))
def test_map_matches_btf_definition(btf: Btf, name: str) -> None:
    spec = _abi.MAPS[name]
    variables = {v["name"]: v for v in btf.datasecs().get(".maps", [])}
    assert name in variables, "map %s is not in the object" % name
    fields = map_definition(btf, variables[name])
    built = {
        "type": fields.get("type"),
        "key_size": fields.get("key_size"),
        "value_size": fields.get("value_size"),
        "max_entries": fields.get("max_entries"),
        "map_flags": fields.get("map_flags", 0),
    }
    mirror = {
        "type": spec.map_type,
        "key_size": spec.key_size,
        "value_size": spec.value_size,
        "max_entries": spec.max_entries,
        "map_flags": spec.flags,
    }
    assert built == mirror
    assert (fields.get("key_type"), fields.get("value_type")) == \
        SPEC_MAP_TYPES[name]


def test_object_has_no_other_maps(btf: Btf, elf: ELFFile) -> None:
    datasecs = btf.datasecs()
    assert {v["name"] for v in datasecs[".maps"]} == set(_abi.MAPS)
    in_maps_section = {s.name for s in _symbols(elf)
                       if s["st_info"]["type"] == "STT_OBJECT"
                       and _section_name(elf, s) == ".maps"}
    assert in_maps_section == set(_abi.MAPS)
    # No legacy map section, and no global data that libbpf would turn
    # into maps of its own, but the kernel version it sets at load time
    # (fp_now() picks its clock by it).
    sections = [s.name for s in elf.iter_sections()]
    assert "maps" not in sections
    internal = [n for n in sections + list(datasecs)
                if n.startswith(INTERNAL_MAP_SECTIONS)]
    assert internal == [".kconfig"]
    assert [v["name"] for v in datasecs[".kconfig"]] == [
        "LINUX_KERNEL_VERSION"]


def test_mirror_names_every_map_of_the_spec() -> None:
    assert set(_abi.MAPS) == set(SPEC_MAP_TYPES)
    assert set(_abi.RETIRED_MAPS) == set(RETIRED_MAP_TYPES)
    for name, (key, value) in RETIRED_MAP_TYPES.items():
        spec = _abi.RETIRED_MAPS[name]
        assert (spec.key_size, spec.value_size) == (
            _abi.STRUCTS[key][1], _abi.STRUCTS[value][1])
    assert _abi.MAPS["rate_limited"].max_entries == _abi.CLASS_SLOTS
    assert _abi.MAPS["stats"].max_entries == len(_abi.REASONS)
    assert _abi.MAPS["proto_stats"].max_entries == len(_abi.PROTOS)
    assert _abi.MAPS["stats_ext"].max_entries == _abi.STATS_EXT_SLOTS
    assert len(_abi.REASONS_EXT) <= _abi.STATS_EXT_SLOTS
    assert (_abi.FP_BANNED, _abi.FP_SCANNER) == (8, 9)
    assert _abi.MAPS["scanner_hits"].max_entries == \
        _abi.MAPS["scanner_sigs"].max_entries
    assert len(_abi.CLASSES) <= _abi.CLASS_SLOTS
    assert set(_abi.COUNTER_MAPS) == {"stats", "stats_ext", "proto_stats"}


# Header constants.


def _run(*argv: str, cwd: Path | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd,
                            check=False)
    assert result.returncode == 0, "%s: %s" % (" ".join(argv),
                                               result.stderr)
    return result.stdout


def _header_constant_names() -> set[str]:
    """Every enumerator of the header, and every macro it defines with a
    value (the include guard has none)."""
    text = _run(CC, "-E", "-P", "-x", "c", str(HEADER))
    names = set()
    for body in re.findall(r"\benum\s+\w*\s*\{(.*?)\}", text, re.S):
        for item in body.split(","):
            if item.strip():
                names.add(item.split("=")[0].strip())
    builtin = set(_run(CC, "-E", "-dM", "-x", "c", "/dev/null").splitlines())
    for line in _run(CC, "-E", "-dM", "-x", "c",
                     str(HEADER)).splitlines():
        if line in builtin:
            continue
        parts = line.split(None, 2)
        if len(parts) == 3 and "(" not in parts[1]:
            names.add(parts[1])
    return names


@pytest.fixture(scope="module")
def header_values(tmp_path_factory: pytest.TempPathFactory
                  ) -> dict[str, int]:
    """Every constant of the header, as a C program compiled against it
    prints it."""
    names = sorted(_header_constant_names())
    assert names, "no constant found in %s" % HEADER
    lines = ['\tprintf("%%s %%lld\\n", "%s", (long long)(%s));' % (n, n)
             for n in names]
    tmp = tmp_path_factory.mktemp("constants")
    source = tmp / "constants.c"
    source.write_text(
        "#include <stdio.h>\n"
        "#include <linux/types.h>\n"
        '#include "fp_abi.h"\n\n'
        "int main(void)\n{\n" + "\n".join(lines) + "\n\treturn 0;\n}\n")
    program = tmp / "constants"
    _run(CC, "-Wall", "-Werror", "-I", str(HEADER.parent), "-o",
         str(program), str(source))
    printed = {}
    for line in _run(str(program)).splitlines():
        name, value = line.split()
        printed[name] = int(value)
    return printed


def test_header_has_no_constant_missing_from_the_mirror(
        header_values: dict[str, int]) -> None:
    assert sorted(set(header_values) - set(_abi.HEADER_CONSTANTS)) == []


@pytest.mark.parametrize("name", sorted(_abi.HEADER_CONSTANTS))
def test_mirror_constant_matches_the_c_header(
        header_values: dict[str, int], name: str) -> None:
    assert name in header_values, "%s is not in %s" % (name, HEADER)
    assert header_values[name] == _abi.HEADER_CONSTANTS[name]


# The program.


def test_program_is_sip_xdp_prog_in_section_xdp(btf: Btf,
                                                elf: ELFFile) -> None:
    assert _abi.PROGRAM_NAME == "sip_xdp_prog"
    functions = [s for s in _symbols(elf)
                 if s["st_info"]["type"] == "STT_FUNC"]
    in_xdp = [s.name for s in functions if _section_name(elf, s) == "xdp"]
    assert in_xdp == [_abi.PROGRAM_NAME]
    symbol = next(s for s in functions if s.name == _abi.PROGRAM_NAME)
    assert symbol["st_info"]["bind"] == "STB_GLOBAL"
    section = elf.get_section_by_name("xdp")
    assert section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
    # BTF: a global function taking the XDP context, returning int.
    func = btf.named("FUNC")[_abi.PROGRAM_NAME]
    assert func["linkage"] == "global"
    proto = btf.get(func["type_id"])
    assert proto["kind"] == "FUNC_PROTO"
    assert btf.name(proto["ret_type_id"]) == "int"
    assert len(proto["params"]) == 1
    param = btf.get(proto["params"][0]["type_id"])
    assert param["kind"] == "PTR"
    assert btf.name(param["type_id"]) == "xdp_md"


def test_license_is_gpl_compatible(btf: Btf, elf: ELFFile) -> None:
    section = elf.get_section_by_name("license")
    assert section is not None, "the object has no license section"
    data = section.data()
    assert data.endswith(b"\0")
    license_text = data.rstrip(b"\0").decode()
    assert license_text in GPL_COMPATIBLE, license_text
    assert [v["name"] for v in btf.datasecs()["license"]] == ["LICENSE"]

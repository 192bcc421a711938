"""The live-frames generator of bench/line_rate.py.

An XDP program (bench/line_rate_gen.bpf.c) run by BPF_PROG_TEST_RUN with
BPF_F_TEST_XDP_LIVE_FRAMES, pinned to the generator's CPU in the
generator's namespace: each run copies one IPv4 frame, gives it the next
of the run's sources and redirects it to the sending veth. The receiving
end gets XDP frames, as a NIC driver hands them over: no socket buffer
is built unless its XDP program passes the frame. The kernel sends as
fast as it can and does not wait for the receiver: frames that find the
receiving ring full are dropped by veth before the receiving end sees
them, so a run's cost is per frame the filter counted, not per frame
sent.

`python -m bench.line_rate_gen PIN FRAME_HEX COUNT` is the sending side,
run by LiveFrames.send() inside the namespace.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path.insert(0, str(REPO))

from bench import line_rate_net as ln  # noqa: E402
from bench.dataplane_programs import BPFTOOL, BUILD, run  # noqa: E402
from plugins.module_utils import _bpf, _build  # noqa: E402

SRC = REPO / "bench" / "line_rate_gen.bpf.c"
OBJ = BUILD / "bench_line_rate_gen.bpf.o"
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
BATCH = 64                  # frames per batch of the live-frames mode
MAX_SOURCES = 65536         # GEN_MAX_SOURCES


def build() -> Path:
    if OBJ.exists() and OBJ.stat().st_mtime >= SRC.stat().st_mtime:
        return OBJ
    flags = _build.compile_flags([str(REPO / "bpf")], [])
    run(*_build.compile_argv("clang", flags, str(SRC), str(OBJ)))
    return OBJ


class LiveFrames:
    """The program loaded and pinned under pin_dir, sending one frame
    from the given sources, in turn."""

    def __init__(self, pin_dir: Path) -> None:
        pin_dir.mkdir()
        self.pin_dir = pin_dir
        run(BPFTOOL, "prog", "load", str(build()), str(pin_dir / "prog"),
            "type", "xdp", "pinmaps", str(pin_dir))

    def send(self, pair: ln.Pair, frame: bytes,
             sources: Sequence[ipaddress.IPv4Address], count: int,
             timeout: float) -> ln.Sent:
        """count copies of frame to pair, from sources in turn; bounded by
        count and by timeout seconds."""
        if not 0 < len(sources) <= MAX_SOURCES:
            raise ln.BenchError("%d sources: give 1 to %d"
                                % (len(sources), MAX_SOURCES))
        (link,) = json.loads(ln.run(*ln.in_netns(
            pair.gen_ns, "ip", "-json", "link", "show", "dev",
            pair.gen_dev)))
        with _bpf.Map.open_pinned(str(self.pin_dir / "gen_config")) as m:
            m.update(struct.pack("=I", 0),
                     struct.pack("=II", link["ifindex"], len(sources)))
        with _bpf.Map.open_pinned(str(self.pin_dir / "gen_sources")) as m:
            m.update_batch(
                b"".join(struct.pack("=I", i) for i in range(len(sources))),
                b"".join(a.packed for a in sources))
        with _bpf.Map.open_pinned(str(self.pin_dir / "gen_count")) as m:
            m.update(struct.pack("=I", 0), bytes(m.full_value_size))
        cmd = ln.in_netns(pair.gen_ns, "taskset", "-c", str(ln.GEN_CPU),
                          "timeout", "%d" % max(1, int(timeout)),
                          sys.executable, "-m", "bench.line_rate_gen",
                          str(self.pin_dir / "prog"), frame.hex(),
                          str(count))
        done = subprocess.run(cmd, capture_output=True, text=True,
                              cwd=str(REPO), start_new_session=True,
                              check=False)
        if done.returncode:
            raise ln.BenchError("the live-frames generator failed (rc %d): "
                                "%s" % (done.returncode,
                                        done.stderr.strip()[-400:]))
        return ln.Sent(count, float(done.stdout))


def main(argv: Sequence[str]) -> int:
    """The sending side: one live-frames test run of count repeats."""
    pin, frame_hex, count = argv
    frame = bytes.fromhex(frame_hex)
    fd = _bpf.obj_get(pin)
    data = ctypes.create_string_buffer(frame, len(frame))
    attr = _bpf._TestRun(prog_fd=fd, data_size_in=len(frame),
                         data_in=ctypes.addressof(data), repeat=int(count),
                         flags=BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=BATCH)
    start = time.perf_counter()
    _bpf.bpf(_bpf.BPF_PROG_TEST_RUN, attr, "live-frames test run")
    print("%.6f" % (time.perf_counter() - start))
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Counter arithmetic and the node_exporter text, without the kernel."""

from __future__ import annotations

from plugins.module_utils import _abi, _counters


def counters(packets: int) -> _counters.Counters:
    return {
        "stats": {name: {"packets": packets * i, "bytes": 100 * i}
                  for i, name in enumerate(_abi.REASONS)},
        "proto_stats": {name: {"packets": i, "bytes": 10 * i}
                        for i, name in enumerate(_abi.PROTOS)},
    }


def test_per_cpu_slots_are_summed() -> None:
    raw = _abi.COUNTER.pack(3, 300) + _abi.COUNTER.pack(4, 400)
    assert _counters.sum_percpu(raw, _abi.COUNTER.size) == (7, 700)


def test_prometheus_text_has_every_counter_once() -> None:
    text = _counters.prometheus_text(counters(2))
    assert 'vos_fastpath_packets_total{reason="blocked"} 4\n' in text
    assert 'vos_fastpath_bytes_total{reason="non_ip"} 700\n' in text
    assert 'vos_fastpath_protocol_packets_total{protocol="other"} 3\n' in text
    samples = [line for line in text.splitlines()
               if not line.startswith("#")]
    assert len(samples) == 2 * (len(_abi.REASONS) + len(_abi.PROTOS))
    assert text.count("# TYPE") == 4

# Generates the YAML UI fixtures from forwarder.yaml (run once; the outputs are committed and reviewed).
import pathlib
ui = pathlib.Path(__file__).parent / "ui"
base = (ui / "forwarder.yaml").read_text()

def edit(*pairs):
    s = base
    for a, b in pairs:
        assert a in s, a
        s = s.replace(a, b, 1)
    return s

P1_NO_RX = ("  p1:\n    device: net_ring0      # everything else defaulted", "  p1:\n    device: net_ring0\n    rx_queues: 0")
cases = {
    "unknown_field": edit(("    shared_tx: false", "    shared_tx: false\n    colour: red")),
    "wrong_type": edit(("rx_queues: 1", "rx_queues: one")),
    "unknown_port": edit(("to: p0.tx[1]", "to: p9.tx[1]")),
    "unknown_ring": edit(("from: ring:handoff", "from: ring:handof")),
    "rx_polled_by_two_lcores": edit(("from: p1.rx[0]", "from: p0.rx[0]"), P1_NO_RX),
    "rx_not_polled": edit(("rx_queues: 1", "rx_queues: 2")),
    "tx_written_by_two_lcores": edit(("to: ring:handoff", "to: p0.tx[1]"),
        ("      - from: ring:handoff\n        to: p1.tx[0]\n", ""), ("rings:\n  handoff: { size: 1024 }\n", "")),
    "lcore_twice": edit(("lcore: 2", "lcore: 1")),
    "lcore_outside_set": edit(("lcore: 2", "lcore: 7")),
    "main_lcore_as_worker": edit(("main_lcore: 0", "main_lcore: 1")),
    "main_lcore_outside_set": edit(("main_lcore: 0", "main_lcore: 5")),
    "queue_out_of_range": edit(("to: p0.tx[1]", "to: p0.tx[2]")),
    "burst_zero": edit(("burst: 32", "burst: 0")),
    "burst_not_power_of_two": edit(("burst: 32", "burst: 24")),
    "burst_over_descriptors": edit(("rx_descriptors: 1024", "rx_descriptors: 16")),
    "mempool_too_small": edit(("size: 8191", "size: 2048")),
    "mempool_cache_too_large": edit(("cache: 256", "cache: 1024")),
    "duplicate_port": edit(("  p1:", "  p0:")),
    "duplicate_device": edit(("net_ring0", "net_null0")),
    "invalid_device": edit(("net_ring0", "eth0")),
    "ring_size": edit(("size: 1024 }", "size: 1000 }")),
    "ring_unused": edit(("rings:\n", "rings:\n  spare: { size: 8 }\n")),
    "invalid_identifiers": edit(("name: forwarder", "name: for-warder"), ("max_len:", "max len:")),
    "bad_endpoint": edit(("from: p0.rx[0]", "from: p0.rx0")),
    "bad_stage_path": edit(('"crate::Filter"', '"crate::Fil ter"')),
    "extra_arg_conflict": edit(('["--in-memory"]', '["--in-memory", "-l", "0-3"]')),
    "memory_mode": edit(("memory: no-huge", "memory: lots")),
    "rx_queue_out_of_range": edit(("from: p1.rx[0]", "from: p1.rx[3]")),
    "rx_polled_twice_by_one_lcore": edit(("        to: p0.tx[1]", "        to: p0.tx[1]\n      - from: p1.rx[0]")),
    "eal_rules": edit(("memory_mb: 256", "memory_mb: 0"), ("file_prefix: fwd", "file_prefix: a/b"),
        ('"0-2"', '"0-2,2"')),
    "empty_lcore_set": edit(('lcores: "0-2"', "lcores: []"), ("  main_lcore: 0            # default: the first lcore of the set\n", "")),
    "port_rules": edit(("rx_descriptors: 1024", "rx_descriptors: 0"),
        ("  p1:\n    device: net_ring0      # everything else defaulted", "  p1:\n    device: net_ring0\n    rx_queues: 0\n    tx_queues: 0"),
        ("from: p1.rx[0]", "from: ring:handoff"), ("to: p1.tx[0]", "to: drop"), ("burst: 32", "burst: 1")),
    "ring_named_like_port": edit(("handoff: { size", "p1: { size"), ("ring:handoff", "ring:p1"), ("ring:handoff", "ring:p1")),
    "core_without_polls": edit(("  - lcore: 2\n    burst: 32\n    polls:\n      - from: ring:handoff\n        to: p1.tx[0]\n      - from: p1.rx[0]\n        to: p0.tx[1]\n", "  - lcore: 2\n    polls: []\n")),
    "listener_not_on_every_queue": edit(("    device: net_ring0      # everything else defaulted", "    device: net_ring0\n    rx_queues: 2"),
        ("        to: ring:handoff\n  - lcore: 2", "        to: ring:handoff\n      - from: p1.rx[1]\n  - lcore: 2"),
        ("      - from: p1.rx[0]\n        to: p0.tx[1]", "      - from: p1.rx[0]\n        stages:\n          - { type: reliable, params: { endpoint: ingest, ip: \"10.0.0.1\", port: 7000, mac: \"02:00:00:00:00:01\", peer: \"10.0.0.2:7000\" } }\n        to: p0.tx[1]")),
    "table_params": edit(("      - from: p1.rx[0]\n        to: p0.tx[1]", "      - from: p1.rx[0]\n        stages:\n"
        "          - { type: reliable, params: { endpoint: one, ip: \"10.0.0.1\", port: 7000, mac: \"02:00:00:00:00:01\", peer: \"10.0.0.2:7000\", max_connections: 8 } }\n"
        "          - { type: reliable_mux, params: { endpoint: many, ip: \"10.0.0.1\", port: 7001, mac: \"02:00:00:00:00:01\", max_connections: 0, connections: 4 } }\n"
        "          - { type: streaming_mux, params: { endpoint: dials, ip: \"10.0.0.1\", port: 7002, mac: \"02:00:00:00:00:01\", role: connect, connections: 2000 } }\n"
        "        to: p0.tx[1]")),
    "typo_field": edit(("rx_queues: 1", "rx_queus: 1")),
    "many_errors": edit(("burst: 32", "burst: 0"), ("lcore: 2", "lcore: 9"), ("size: 1024 }", "size: 3 }")),
}
for name, text in cases.items():
    (ui / f"yaml_{name}.yaml").write_text(text)
    (ui / f"yaml_{name}.rs").write_text(f'rosette_macros::pipeline!("yaml_{name}.yaml");\n\nfn main() {{}}\n')

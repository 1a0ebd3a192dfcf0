# Generates the typed-param UI fixtures from ui/params.yaml (run once; the outputs are committed and
# reviewed). Each case changes one thing and must fail with one message at the YAML location.
import pathlib
ui = pathlib.Path(__file__).parent / "ui"
base = (ui / "params.yaml").read_text()

def edit(*pairs):
    s = base
    for a, b in pairs:
        assert a in s, a
        s = s.replace(a, b, 1)
    return s

cases = {
    "unknown": edit(("port: 7000", "portt: 7000")),
    "missing": edit(('              ip: "10.0.0.1"\n', "")),
    "wrong_kind": edit(("port: 7000", 'port: "7000"')),
    "bad_ipv4": edit(('ip: "10.0.0.1"', 'ip: "10.0.0.300"')),
    "bad_socket_addr": edit(('peer: "10.0.0.2:7000"', 'peer: "10.0.0.2"')),
    "bad_mac": edit(('mac: "02:00:00:00:00:01"', 'mac: "02:00:00:00:01"')),
    "bad_duration": edit(("rto_min: 1ms", "rto_min: 1min")),
    "bad_enum": edit(("role: listen", "role: lsten"), ("proto: udp", "proto: sctp")),
    "out_of_range": edit(("port: 7000", "port: 70000"), ("loss_ppm: 100", "loss_ppm: 2000000"),
        ("max_len: 1500", "max_len: -1")),
    "bad_short_name": edit(("type: reliable", "type: reliabel")),
    # One value of the wrong kind for every kind of param other than the integer of `wrong_kind`: bool,
    # float, string, duration, IPv4, socket address, MAC, enum and integer-or-word.
    "wrong_kinds": edit(('ip: "10.0.0.1"', "ip: 10"), ('mac: "02:00:00:00:00:01"', "mac: true"),
        ('peer: "10.0.0.2:7000"', "peer: 7000"), ("role: listen", "role: 1"), ("rto_min: 1ms", "rto_min: 5"),
        ("              rto_min", '              pacing: "yes"\n              epoch: false\n              rto_min'),
        ("proto: udp", "proto: 6, weight: heavy"), ("loss_ppm: 100", "loss_ppm: 100, env: 3")),
    # The checks the runtime makes again when it builds the stage (rosette-checks), each at the
    # location of the param it names, and the "did you mean" of a misspelt param.
    "window_too_small": edit(("rto_min: 1ms", "rto_min: 1ms\n              window: 0")),
    "window_cannot_hold_message": edit(("rto_min: 1ms", "rto_min: 1ms\n              window: 16")),
    "queue_depth_zero": edit(("rto_min: 1ms", "rto_min: 1ms\n              queue_depth: 0")),
    "mss_zero": edit(("rto_min: 1ms", "rto_min: 1ms\n              mss: 0")),
    "rto_order": edit(("rto_min: 1ms", "rto_min: 300ms")),
    "peer_missing": edit(('              peer: "10.0.0.2:7000"\n', "")),
    "fault_blackhole_order": edit(("loss_ppm: 100", "loss_ppm: 100, blackhole_start: 10ms, blackhole_end: 5ms")),
    "fault_hold_capacity": edit(("loss_ppm: 100", "reorder_ppm: 100, hold_capacity: 0")),
    "inject_payload": edit(("type: fault\n            params: { loss_ppm: 100 }",
        "type: inject_udp\n            params: { count: 1, dst_port: 9, payload_len: 9000 }")),
    "typo": edit(("rto_min: 1ms", "rto_min: 1ms\n              windw: 64")),
}
for name, text in cases.items():
    (ui / f"yaml_param_{name}.yaml").write_text(text)
    (ui / f"yaml_param_{name}.rs").write_text(
        f'rosette_macros::pipeline!("yaml_param_{name}.yaml");\n\n'
        '// The user stage every typed-param case declares (one copy, shared).\n'
        'include!("params_stage.rs.in");\n\nfn main() {}\n'
    )

"""Bench: synthesis-report parsing, the bit-packed CPU path against intref, paper-scale network shapes,
cycle counts against the Verilator engine simulation, and a small end-to-end bench run."""

import argparse
import json

import numpy as np
import pytest

from binaccel import bench, records
from binaccel.bench import cpu as bench_cpu
from binaccel.bench import linktime as bench_linktime
from binaccel.bench.cpu import _PackedLayer
from binaccel.commands import bench as bench_cmd
from binaccel.commands import synth as synth_cmd
from binaccel.hw import sweep
from binaccel.sw import intref, netzoo, pack, paths, program
from binaccel.sw.hwif import EngineParams
from binaccel.sw.link import FrameKind, line_seconds
from binaccel.sw.randmodel import random_input, random_layer, random_model


@pytest.fixture
def build(tmp_path, monkeypatch):
    """The build folder of the test: ``tmp_path / "build"`` (as ``binaccel --build-dir`` sets it)."""
    monkeypatch.setattr(paths, "_chosen", None)
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "build"))
    return tmp_path / "build"


def _report(board="ulx3s", fits=True, fmax=151.5, rows=4, cols=4, word=32, out_dir="/tmp/x"):
    return {
        "board": board, "device": "LFE5U-85F", "status": "ok" if fits else "no_fit", "fits": fits, "seed": 1,
        "params": {**EngineParams(rows=rows, cols=cols, word=word).as_dict()},
        "utilization": {"LUT": {"used": 12000, "total": 83640, "resource": "TRELLIS_COMB"},
                        "FF": {"used": 9000, "total": 83640, "resource": "TRELLIS_FF"},
                        "BRAM": {"used": 20, "total": 208, "resource": "DP16KD"},
                        "DSP": {"used": 16, "total": 156, "resource": "MULT18X18D"}},
        "accel_clock": {"net": "bridge.clk", "fmax_mhz": fmax, "target_mhz": 150.0, "met": fmax >= 150},
        "out_dir": out_dir,
    }


# --- report parsing ---------------------------------------------------------------------------

def test_board_summary_fields():
    s = sweep.board_summary(_report())
    assert s["fmax_mhz"] == 151.5 and s["met"] is True and s["target_mhz"] == 150.0
    assert (s["luts"], s["luts_total"], s["ffs"], s["brams"], s["dsps"]) == (12000, 83640, 9000, 20, 16)
    assert s["array"] == {"rows": 4, "cols": 4, "word": 32} and s["macs_per_cycle"] == 512
    s = sweep.board_summary(_report(fmax=120.0))
    assert s["met"] is False
    nofit = _report(fits=False)
    nofit["accel_clock"] = None
    s = sweep.board_summary(nofit)
    assert s["fits"] is False and s["fmax_mhz"] is None and s["met"] is False


@pytest.mark.parametrize("drop,field", [("utilization", "utilization"), ("params", "params")])
def test_board_summary_missing_field(drop, field):
    r = _report()
    del r[drop]
    with pytest.raises(ValueError, match=field):
        sweep.board_summary(r)
    r = _report()
    del r["params"]["word"]
    with pytest.raises(ValueError, match="params.word"):
        sweep.board_summary(r)


def test_boards_json_roundtrip_and_errors(tmp_path):
    best = sweep.board_summary(_report())
    small = sweep.board_summary(_report(rows=2, cols=2, word=16))
    res = {"ulx3s": {"board": "ulx3s", "target_mhz": 150.0, "best": best, "met": True, "points": [small, best]}}
    path = sweep.write_boards_json(res, tmp_path / "boards.json")
    assert (tmp_path / "boards.md").read_text().count("| ulx3s |") == 2
    doc = sweep.load_boards_json(path)
    assert doc["boards"]["ulx3s"]["best"]["array"] == {"rows": 4, "cols": 4, "word": 32}
    boards = bench.load_boards(path)
    assert set(boards) == {"ulx3s"} and boards["ulx3s"]["fmax_mhz"] == 151.5
    # errors name the file and the field
    bad = json.loads(path.read_text())
    del bad["boards"]["ulx3s"]["best"]["luts"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"bad.json: field 'boards.ulx3s.best.luts' missing"):
        sweep.load_boards_json(tmp_path / "bad.json")
    bad["format"] = "other"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="field 'format'"):
        sweep.load_boards_json(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        sweep.load_boards_json(tmp_path / "bad.json")


def test_params_for_models_covers_and_is_minimal():
    rng = np.random.default_rng(3)
    model = random_model(rng, mode="mcn", planes=2)
    need = sweep.params_for_models([model], images=4)
    p = EngineParams(**need)
    for layer in model.layers:
        pack.check_layer(layer, p)
        pack.plan_layer(layer, 4, p)
    assert need["max_fan_in"] == max(l.fan_in for l in model.layers)
    assert need["max_planes"] == 2 and need["max_taps"] == 9 and need["max_in_bits"] == 8
    # one bit less of any width refuses some layer
    for field in ("max_fan_in", "max_in_bits", "mul_bits", "add_bits"):
        smaller = EngineParams(**{**need, field: need[field] - 1})
        with pytest.raises(ValueError):
            for layer in model.layers:
                pack.check_layer(layer, smaller)
    int8 = random_layer(rng, w_bits=8)
    with pytest.raises(ValueError, match="w_bits"):
        sweep.params_for_models([type(model)(name="m", input_shape=(8, 6, 6), layers=[int8])])


# --- bit-packed CPU path ----------------------------------------------------------------------

@pytest.mark.parametrize("mode,planes", [("plain", 1), ("mcn", 2), ("mcn1", 4)])
def test_packed_net_equals_intref_models(mode, planes):
    rng = np.random.default_rng(11)
    model = random_model(rng, mode=mode, planes=planes)
    images = rng.integers(0, 256, size=(5, *model.input_shape)).astype(np.uint8)
    ref = intref.run_model(model, images)
    got = bench.PackedNet(model).run(images)
    assert len(got) == len(ref)
    for a, b in zip(ref, got):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert np.array_equal(bench.PackedNet(model).predict(images), intref.predict(model, images))


CASES = [
    dict(in_ch=70, in_h=5, in_w=6, out_ch=5, kernel=3, stride=1, padding=1),            # 2 words, partial
    dict(in_ch=64, in_h=7, in_w=7, out_ch=3, kernel=3, stride=2, padding=0, pool=1),     # whole word
    dict(in_ch=5, in_h=4, in_w=4, out_ch=6, kernel=1, stride=1, padding=0),
    dict(in_ch=5, in_h=7, in_w=7, out_ch=6, kernel=3, stride=2, padding=1, in_bits=4, mode="mcn", planes=2,
         out_kind="requant", out_bits=3),
    dict(in_ch=3, in_h=6, in_w=6, out_ch=4, kernel=3, stride=1, padding=1, in_bits=8, mode="mcn1", planes=2,
         pool=2),
    dict(kind="fc", in_ch=5, in_h=3, in_w=3, out_ch=7, in_bits=3, out_kind="logits"),
    dict(kind="fc", in_ch=130, in_h=1, in_w=1, out_ch=4, out_kind="logits"),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_packed_layer_equals_intref(case):
    rng = np.random.default_rng(100 + case)
    layer = random_layer(rng, **CASES[case])
    x = random_input(rng, layer, 3)
    assert np.array_equal(_PackedLayer(layer)(x), intref.run_layer(layer, x))
    # extremes: all ones / all zeros input
    for fill in (0, (1 << layer.in_bits) - 1 if layer.in_bits > 1 else 1):
        xf = np.full_like(x, fill)
        assert np.array_equal(_PackedLayer(layer)(xf), intref.run_layer(layer, xf))


def test_packed_refuses_int8_weights():
    layer = random_layer(np.random.default_rng(0), w_bits=8)
    with pytest.raises(ValueError, match="w_bits"):
        _PackedLayer(layer)


def test_time_call_median():
    calls = []
    t = bench.time_call(lambda: calls.append(1), warmup=2, reps=5)
    assert len(calls) == 2 + t["reps"] and t["reps"] >= 5
    assert t["min_s"] <= t["median_s"] <= t["max_s"]


# --- paper-scale networks ---------------------------------------------------------------------

def test_netzoo_shapes_validate_and_fit_the_engine():
    expect = {"resnet20_siman": (20, "plain", 1), "vgg_small": (7, "plain", 1), "mcn_wrn22": (20, "mcn", 4)}
    assert set(netzoo.names()) == set(expect)
    for name, (n_layers, mode, repeat) in expect.items():
        m = netzoo.build(name, seed=1)
        m.validate()
        assert len(m.layers) == n_layers and m.input_repeat == repeat
        assert tuple(m.input_shape) == (3, 32, 32)
        assert m.layers[0].in_bits == 8 and all(l.in_bits == 1 for l in m.layers[1:])
        assert all(l.w_bits == 1 for l in m.layers)
        assert all(l.mode == mode for l in m.layers[:-1]) and m.layers[-1].kind == "fc"
        assert all(l.kernel in (1, 3) and l.stride in (1, 2) for l in m.layers)
        assert m.meta["cuts"] and all(isinstance(c, str) for c in m.meta["cuts"])
        p = EngineParams(**sweep.params_for_models([m], images=64))
        for layer in m.layers:
            pack.plan_layer(layer, 64, p)
    r20 = netzoo.build("resnet20_siman")
    assert [l.out_ch for l in r20.layers[:-1]] == [16] * 7 + [32] * 6 + [64] * 6
    assert [l.out_h for l in r20.layers[:-1]] == [32] * 7 + [16] * 6 + [8] * 6
    vgg = netzoo.build("vgg_small")
    assert [(l.out_ch, l.out_h) for l in vgg.layers[:-1]] == [(128, 32), (128, 16), (256, 16), (256, 8),
                                                            (512, 8), (512, 4)]
    assert vgg.layers[-1].fan_in == 8192
    assert all(not l.flip.any() for l in vgg.layers if l.pool == 2)  # pool/threshold commute
    mcn = netzoo.build("mcn_wrn22")
    assert mcn.layers[0].in_ch == 12 and {l.planes for l in mcn.layers[:-1]} == {4}
    assert [l.groups for l in mcn.layers[:-1]] == [16] * 7 + [32] * 6 + [64] * 6
    with pytest.raises(ValueError, match="unknown network"):
        netzoo.build("resnet50")


def test_netzoo_seeded():
    a, b = netzoo.build("resnet20_siman", seed=5), netzoo.build("resnet20_siman", seed=5)
    assert all(np.array_equal(x.weights, y.weights) for x, y in zip(a.layers, b.layers))
    c = netzoo.build("resnet20_siman", seed=6)
    assert not np.array_equal(a.layers[3].weights, c.layers[3].weights)


def test_torch_models_have_the_shapes():
    import torch

    m = netzoo.build("resnet20_siman")
    for kind in ("float", "brevitas"):
        net = netzoo.torch_model(m, kind=kind)
        with torch.no_grad():
            y = net(torch.rand(2, 3, 32, 32))
        assert tuple(y.shape) == (2, 10)
        convs = [mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d)]
        assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == \
            [(l.in_ch, l.out_ch, l.stride) for l in m.layers[:-1]]
    with pytest.raises(ValueError, match="kind"):
        netzoo.torch_model(m, kind="int")


# --- cycles: bench == Verilator simulation -----------------------------------------------------

@pytest.mark.sim   # the 4x4x32 engine build, beyond the default tier's one engine build
def test_bench_cycles_equal_simulation():
    """The cycles the bench uses (engine cycle model) are the simulated engine's, layer by layer, on a
    tiny random model (the default 4x4x32 build, no idle / backpressure)."""
    from binaccel.sim.layer import run_model

    rng = np.random.default_rng(7)
    model = random_model(rng, mode="mcn", planes=2)
    images = rng.integers(0, 256, size=(2, *model.input_shape)).astype(np.uint8)
    array = {"rows": 4, "cols": 4, "word": 32}
    outs, sim_cycles = run_model(model, images, **array, idle=0.0, backpressure=0.0)
    for a, b in zip(outs, intref.run_model(model, images)):
        assert np.array_equal(a, b)
    used = bench.network_cycles(model, array, n=2)          # the bench's call (widths the model needs)
    default = bench.network_cycles(model, array, n=2, params=EngineParams())  # the simulated build
    assert [l["cycles"] for l in used["layers"]] == list(sim_cycles)
    assert [l["cycles"] for l in default["layers"]] == list(sim_cycles)
    assert used["cycles"] == sum(sim_cycles) and used["cycles_per_image"] == sum(sim_cycles) / 2
    assert 0 < used["utilisation"] <= 1


# --- end to end (tiny) ------------------------------------------------------------------------

def test_run_bench_tiny(tmp_path):
    rng = np.random.default_rng(2)
    model = random_model(rng, mode="plain")
    boards = {"ulx3s": sweep.board_summary(_report(rows=4, cols=4, word=32, fmax=100.0)),
              "icebreaker": sweep.board_summary(_report(board="icebreaker", rows=2, cols=2, word=16, fmax=20.0))}
    # a timing closure of the ULX3S build: its bitstream runs at 90 MHz
    boards["ulx3s"]["closure"] = {"met": True, "clock_mhz": 90.0, "fmax_mhz": 91.2, "attempts": []}
    msgs = []
    res = bench.run_bench(out_dir=tmp_path, boards=boards, networks=["tiny"], extra_models={"tiny": model},
                          batches=(1, 4), warmup=0, reps=1, train=False, cycles="model", log=msgs.append)
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["cycles_source"] == bench.MODEL_SOURCE
    assert set(doc["boards"]) == {"ulx3s", "icebreaker"}
    for key in ("fmax_mhz", "luts", "luts_total", "ffs", "brams", "array"):
        assert key in doc["boards"]["ulx3s"]
    net = doc["networks"]["tiny"]
    assert net["packed_exact"] is True
    for board, b in boards.items():
        e = net[board]
        for key in ("fpga_s_per_image", "cpu_torch_s_per_image", "cpu_packed_s_per_image", "utilisation"):
            assert isinstance(e[key], float) and e[key] > 0
        for n in (1, 4):
            cyc = bench.network_cycles(model, b["array"], n=n)
            r = e["batch"][str(n)]
            assert r["cycles_per_image"] == cyc["cycles_per_image"]
            assert r["fpga_s_per_image"] == pytest.approx(cyc["cycles_per_image"] / (b["fmax_mhz"] * 1e6), rel=1e-12)
            if board == "ulx3s":
                assert r["fpga_bitstream_s_per_image"] == pytest.approx(cyc["cycles_per_image"] / 90e6, rel=1e-12)
                assert r["ratio_fpga_over_packed"] == pytest.approx(r["fpga_bitstream_s_per_image"]
                                                                    / r["cpu_packed_s_per_image"])
            else:   # no timing-met bitstream: no FPGA time to compare
                assert r["fpga_bitstream_s_per_image"] is None and r["ratio_fpga_over_packed"] is None
        link = e["link"]
        assert link["design"] == "accel+uart" and link["baud"] == 3_000_000 == doc["boards"][board]["baud"]
        for n in (1, 4):
            r = e["batch"][str(n)]
            c = net["cpu"][str(n)]
            # the fastest of the deployable runtimes, Brevitas not among them
            runtimes = {"torch": r["cpu_torch_s_per_image"], "onnxruntime-t1": r["cpu_onnxruntime_t1_s_per_image"],
                        f"onnxruntime-t{r['cpu_onnxruntime_tall_threads']}": r["cpu_onnxruntime_tall_s_per_image"],
                        "packed": r["cpu_packed_s_per_image"]}
            assert r["cpu_best_s_per_image"] == min(runtimes.values())
            assert runtimes[r["cpu_best_runtime"]] == r["cpu_best_s_per_image"]
            assert r["cpu_onnxruntime_t1_s_per_image"] == c["onnxruntime_t1"]["median_s"] / n
            assert c["onnxruntime_t1"]["threads"] == 1
            assert r["cpu_onnxruntime_tall_threads"] == doc["machine"]["onnxruntime_threads"]
            if r["fpga_bitstream_s_per_image"] is None:
                assert r["ratio_fpga_over_cpu_best"] is None
            else:
                assert r["ratio_fpga_over_cpu_best"] == pytest.approx(r["fpga_bitstream_s_per_image"]
                                                                      / r["cpu_best_s_per_image"])
            # link: the framed bytes in and out, 10 bits each, at the board's baud
            assert r["baud"] == 3_000_000
            assert r["link_s_per_image"] == pytest.approx(
                (link["host_to_device_bytes"] + link["result_bytes"]) * 10 / 3_000_000, rel=1e-12)
            if board == "ulx3s":
                assert r["end_to_end_s_per_image"] == pytest.approx(r["link_s_per_image"]
                                                                    + r["fpga_bitstream_s_per_image"], rel=1e-12)
                assert r["ratio_end_to_end_over_cpu_best"] == pytest.approx(
                    r["end_to_end_s_per_image"] / r["cpu_best_s_per_image"])
            else:
                assert r["end_to_end_s_per_image"] is None     # no timing-met bitstream recorded
        assert e["ratio_fpga_over_cpu_best"] == e["batch"]["1"]["ratio_fpga_over_cpu_best"]
    # the ONNX export lies in the output folder and agrees with torch
    assert net["cpu"]["onnx"]["path"] == str(tmp_path / "onnx" / "tiny.onnx")
    assert (tmp_path / "onnx" / "tiny.onnx").stat().st_size > 0 and net["cpu"]["onnx"]["check"]["ok"]
    assert doc["machine"]["onnxruntime"] == "1.32.0"
    md = (tmp_path / "bench.md").read_text()
    assert "| tiny | ulx3s | 1 |" in md
    assert "FPGA/CPU best" in md and "## CPU runtimes" in md and "@ 3 Mbaud" in md
    assert "are at the clock of the bitstream that meets timing, 90 MHz; at the build's fmax" in md
    assert "each would take 0.9x as long" in md
    assert doc["boards"]["ulx3s"]["closure"]["clock_mhz"] == 90.0
    for f in res["plots"]:
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_link_figures_from_the_frame_encoder():
    """Bytes on the line = payload + 10 per frame of at most 256 payload bytes; time = bytes x 10 / baud."""
    from_link = bench_linktime.framed_bytes
    assert [from_link(FrameKind.IMAGE, n) for n in (0, 1, 256, 257, 512)] == [10, 11, 266, 277, 532]
    f = bench_linktime.link_figures([(FrameKind.IMAGE, 300)], [(FrameKind.RESULT, 40)], 115_200)
    assert f["host_to_device_bytes"] == 320 and f["result_bytes"] == 50 and f["host_frames"] == 2
    assert f["status_bytes"] == 2 * 14
    assert f["link_s_per_image"] == 370 * 10 / 115_200
    assert line_seconds(3000, 3_000_000) == 0.01
    with pytest.raises(ValueError, match="baud: expected a positive int"):
        line_seconds(10, 0)


def test_accel_link_counts_the_run_command_and_the_logits():
    rng = np.random.default_rng(4)
    model = random_model(rng, mode="plain")
    pr = program.compile_model(model, None, stats=False)
    run_words = len(pr.image_words(np.zeros(model.input_shape, dtype=np.uint8))) - len(pr.stream_words)
    f = bench_linktime.accel_link(model, None, 3_000_000)
    n_in, n_out = 4 * (run_words + len(pr.stream_words)), 4 * pr.out_words_per_image
    assert f["payload_bytes_in"] == n_in and f["payload_bytes_out"] == n_out
    assert f["host_to_device_bytes"] == n_in + 10 * -(-4 * run_words // 256) + (
        10 * -(-4 * len(pr.stream_words) // 256) if pr.stream_words else 0)
    assert f["result_bytes"] == n_out + 10 * -(-n_out // 256)
    assert f["link_s_per_image"] == (f["host_to_device_bytes"] + f["result_bytes"]) * 10 / 3_000_000


def test_onnx_export_matches_torch_and_names_runtimes(tmp_path):
    rng = np.random.default_rng(6)
    model = random_model(rng, mode="mcn", planes=2)
    images = rng.integers(0, 256, size=(3, *model.input_shape), dtype=np.int64).astype(np.uint8)
    res = bench_cpu.cpu_timings(model, images=images, batches=(1, 3), warmup=0, reps=1, log=lambda *a: None,
                                onnx_path=tmp_path / "m.onnx", ort_threads=2)
    assert res["onnx"]["check"]["ok"] and res["onnx"]["check"]["max_abs_diff"] <= 1e-4 * res["onnx"]["check"]["max_abs"]
    for n in ("1", "3"):
        e = res[n]
        assert e["onnxruntime_tall"]["threads"] == 2
        best = min(bench_cpu.DEPLOYABLE, key=lambda k: e[k]["s_per_image"])
        assert e["best"]["key"] == best and e["best"]["s_per_image"] == e[best]["s_per_image"]
        assert e["best"]["runtime"] == {"torch_float": "torch", "onnxruntime_t1": "onnxruntime-t1",
                                        "onnxruntime_tall": "onnxruntime-t2", "packed": "packed"}[best]
    with pytest.raises(ValueError, match="threads: expected a positive int"):
        bench_cpu.ort_session(tmp_path / "m.onnx", 0)


@pytest.mark.sim   # the engine's fast-path build (1x2x16), beyond the default tier's one engine build
def test_engine_link_board_cycles_from_its_engine_simulation(tmp_path):
    """A board whose design is the engine behind the link runs layers, not networks: the bench
    simulates its engine build on each batch (not the accelerator), and those cycles equal the
    engine cycle model's; a network the build cannot run gets the model's cycles."""
    rng = np.random.default_rng(3)
    model = random_model(rng, mode="plain")
    mcn = random_model(rng, mode="mcn", planes=2)
    p = {**sweep.BOARD_BASE["icebreaker"], "rows": 1, "cols": 2, "word": 16}   # the Verilator build of
    b = sweep.board_summary(_report(board="icebreaker", rows=1, cols=2, word=16, fmax=25.0))  # test_engine_link
    b["design"], b["params"] = "engine+uart", p
    bench.run_bench(out_dir=tmp_path, boards={"icebreaker": b}, networks=["tiny", "tiny_mcn"],
                    extra_models={"tiny": model, "tiny_mcn": mcn}, batches=(1, 3), warmup=0, reps=1, train=False,
                    cycles="accel", plots=False, log=lambda *a: None)
    doc = json.loads((tmp_path / "bench.json").read_text())
    e = doc["networks"]["tiny"]["icebreaker"]
    assert e["cycles_source"] == bench.ENGINE_SIM_SOURCE and "accel_sim" not in e and e["build_supports"]
    for n in (1, 3):
        model_cpi = bench.network_cycles(model, b["array"], n=n, params=p)["cycles_per_image"]
        assert e["batch"][str(n)]["cycles_per_image"] == model_cpi == e["engine_model"][str(n)]["cycles_per_image"]
        assert e["engine_sim"][str(n)]["outputs_exact"] and e["engine_sim"][str(n)]["images"] == n
        assert e["engine_sim"][str(n)]["model_cycles"] == e["engine_sim"][str(n)]["cycles"]
    m = doc["networks"]["tiny_mcn"]["icebreaker"]
    assert m["build_supports"] is False and m["cycles_source"] == bench.MODEL_SOURCE and "engine_sim" not in m
    assert "| tiny | icebreaker | 1 |" in (tmp_path / "bench.md").read_text()
    assert doc["boards"]["icebreaker"]["design"] == "engine+uart"


def _parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    synth_cmd.register(sub)
    bench_cmd.register(sub)
    return p


def test_cli_registers_synth_and_bench():
    p = _parser()
    a = p.parse_args(["synth", "--board", "ulx3s", "--rows", "8", "--word", "64"])
    assert a.func is synth_cmd._cmd_synth and a.rows == 8 and a.word == 64 and a.cols is None
    assert synth_cmd._engine_fields(a, sweep.BOARD_BASE["ulx3s"])["rows"] == 8
    assert a.design == "accel"  # the board design by default
    a = p.parse_args(["synth", "--board", "icebreaker", "--fm-depth", "128", "--t-depth", "32"])
    f = synth_cmd._engine_fields(a, sweep.base_params("icebreaker"), "accel")
    assert f["fm_depth"] == 128 and f["t_depth"] == 32 and f["w_depth"] == sweep.ACCEL_BASE["icebreaker"]["w_depth"]
    with pytest.raises(ValueError, match="--fm-depth is an accelerator parameter"):
        synth_cmd._engine_fields(a, sweep.BOARD_BASE["icebreaker"], "engine")
    a = p.parse_args(["synth", "--board", "icebreaker", "--design", "engine", "--rows", "2", "--cols", "4"])
    assert a.design == "engine"
    a = p.parse_args(["bench", "--synth", "--networks", "vgg_small"])
    assert a.func is bench_cmd._cmd_bench and a.synth
    a = p.parse_args(["bench"])
    assert not a.synth and a.cycles == "accel"


def _bench_cli_without_synthesis(monkeypatch, argv):
    """Run `binaccel bench ARGV` with the bench itself replaced and synthesis forbidden: (exit code,
    the keyword arguments run_bench got)."""
    monkeypatch.setattr(sweep, "largest_array", lambda *a, **k: pytest.fail("must not synthesize"))
    seen = {}

    def fake_run_bench(**kw):
        seen.update(kw)
        return {"networks": {}, "boards": kw["boards"]}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    args = _parser().parse_args(["bench", *argv])
    return args.func(args), seen


def test_bench_reuses_boards_json(tmp_path, monkeypatch, build):
    """`binaccel bench` without --synth reads bench/boards.json of the build folder (no synthesis)."""
    best = sweep.board_summary(_report(rows=4, cols=4, word=32, fmax=100.0))
    path = sweep.write_boards_json({"ulx3s": {"board": "ulx3s", "best": best, "points": [best]}},
                                   build / "bench" / "boards.json")
    assert bench.boards_json_path() == path
    rc, seen = _bench_cli_without_synthesis(monkeypatch, ["--out", str(tmp_path), "--no-plots"])
    assert rc == 0
    assert seen["boards"]["ulx3s"]["source"] == bench.shown_path(path)
    assert seen["boards"]["ulx3s"]["array"] == {"rows": 4, "cols": 4, "word": 32}


def test_load_boards_falls_back_to_the_curated_record(tmp_path, build, use_record):
    """A build folder without the board search's results gets the curated record and says so."""
    use_record(records.record_from_boards(sweep.load_boards_json(_two_point_boards(tmp_path))))
    assert not bench.boards_json_path().exists()
    boards = bench.load_boards()
    assert boards and all(v["source"] == records.RECORD_LABEL for v in boards.values())
    assert boards["ulx3s"]["design"] == "accel+uart" and boards["ulx3s"]["fmax_mhz"] > 0


def _two_point_boards(tmp_path):
    small = sweep.board_summary(_report(rows=4, cols=4, word=32, fmax=38.9, out_dir="/tmp/a"))
    small_s2 = {**sweep.board_summary(_report(rows=4, cols=4, word=32, fmax=39.2, out_dir="/tmp/a2")), "seed": 2}
    large = sweep.board_summary(_report(rows=5, cols=5, word=32, fmax=29.9, out_dir="/tmp/b"))
    nofit = sweep.board_summary(_report(rows=6, cols=6, word=32, fits=False, out_dir="/tmp/c"))
    return sweep.write_boards_json({"ulx3s": {"board": "ulx3s", "design": "accel+uart", "best": large,
                                              "points": [small, nofit, large, small_s2]}},
                                   tmp_path / "boards.json")


def test_stale_synthesis_record_is_flagged(tmp_path, monkeypatch, capsys, build):
    """A board figure whose report was made from the current gateware and tools (same inputs_sha256)
    is marked current; another hash, or an older record without one, gets a note naming the file and
    the command that measures it again, in the bench's board table and on the console."""
    current = sweep.inputs_hash()
    fresh = {**sweep.board_summary({**_report(rows=4, cols=4, word=32, fmax=40.0), "inputs_sha256": current})}
    assert fresh["inputs_sha256"] == current
    path = sweep.write_boards_json({"ulx3s": {"board": "ulx3s", "design": "accel+uart", "best": fresh,
                                              "points": [fresh]}}, tmp_path / "boards.json")
    b = bench.load_boards(path)["ulx3s"]
    assert b["gateware_current"] is True and bench.stale_note("ulx3s", b) is None
    assert not any("gateware" in line for line in bench.boards_table({"ulx3s": b}))

    for other, says in (("0" * 64, "inputs_sha256 000000000000"), (None, "older than inputs_sha256")):
        old = {**fresh, "inputs_sha256": other}
        path = sweep.write_boards_json({"ulx3s": {"board": "ulx3s", "design": "accel+uart", "best": old,
                                                  "points": [old]}}, tmp_path / "boards.json")
        b = bench.load_boards(path)["ulx3s"]
        assert b["gateware_current"] is False
        note = bench.stale_note("ulx3s", b)
        assert says in note and b["source"] in note
        assert "`binaccel synth --board ulx3s --rows 4 --cols 4 --word 32 --update-boards`" in note
        assert any(note in line for line in bench.boards_table({"ulx3s": b}))
    sweep.write_boards_json({"ulx3s": {"board": "ulx3s", "design": "accel+uart", "best": old, "points": [old]}},
                            bench.boards_json_path())
    capsys.readouterr()
    rc, seen = _bench_cli_without_synthesis(monkeypatch, ["--out", str(tmp_path), "--no-plots"])
    assert rc == 0 and seen["boards"]["ulx3s"]["gateware_current"] is False
    assert bench.stale_note("ulx3s", seen["boards"]["ulx3s"]) in capsys.readouterr().out


def test_update_boards_replaces_a_rerun_point(build):
    """`binaccel synth ... --update-boards` of a point already in boards.json (same parameters and
    seed, its report under another path spelling) replaces it; another seed is kept beside it."""
    path = bench.boards_json_path()
    old = {**sweep.board_summary(_report(rows=5, cols=6, word=32, fmax=34.6)), "report": "build/synth/x/report.json"}
    seed2 = {**old, "seed": 2, "fmax_mhz": 36.0, "report": "build/synth/y/report.json"}
    sweep.update_boards_json("ulx3s", {"board": "ulx3s", "design": "accel+uart", "best": old,
                                       "points": [old, seed2]}, path)
    new = {**old, "fmax_mhz": 35.4, "report": "/abs/build/synth/x/report.json"}
    synth_cmd._update_boards("ulx3s", new)
    res = sweep.load_boards_json(path)["boards"]["ulx3s"]
    assert [(p["seed"], p["fmax_mhz"]) for p in res["points"]] == [(2, 36.0), (1, 35.4)]
    assert bench.load_boards(path, arrays={"ulx3s": (5, 6, 32)})["ulx3s"]["fmax_mhz"] == 36.0
    harness = {**old, "design": "Engine", "wrapping": "core in PortHarness"}   # an older engine record
    assert synth_cmd._same_point(harness, {**old, "design": "engine"})
    assert not synth_cmd._same_point({**old, "design": "engine"}, old)
    # a record made before a parameter existed (no pe_stages) is the same point as one at its default
    before = {**old, "params": {k: v for k, v in old["params"].items() if k != "pe_stages"}}
    assert synth_cmd._same_point(before, {**old, "params": {**old["params"], "pe_stages": 1}})
    assert not synth_cmd._same_point(before, {**old, "params": {**old["params"], "pe_stages": 2}})
    synth_cmd._update_boards("ulx3s", {**new, "fmax_mhz": 35.5})
    synth_cmd._update_boards("ulx3s", {**before, "fmax_mhz": 35.6})
    res = sweep.load_boards_json(path)["boards"]["ulx3s"]
    assert [(p["seed"], p["fmax_mhz"]) for p in res["points"]] == [(2, 36.0), (1, 35.6)]


def test_parse_array():
    assert bench.parse_array("ulx3s=4x4x32") == ("ulx3s", (4, 4, 32))
    assert bench.parse_array("icebreaker=2X4X16") == ("icebreaker", (2, 4, 16))
    for bad in ("ulx3s", "ulx3s=4x4", "=4x4x32", "ulx3s=4x0x32", "ulx3s=4x4xw", "ulx3s=4x4x32x1"):
        with pytest.raises(ValueError, match="expected BOARD=ROWSxCOLSxWORD"):
            bench.parse_array(bad)


def test_load_boards_picks_the_named_array(tmp_path):
    """Without `arrays` the largest fitting build; with it, that fitting build (its fastest seed);
    an array that did not fit, or a board without results, is refused naming file and field."""
    path = _two_point_boards(tmp_path)
    assert bench.load_boards(path)["ulx3s"]["array"] == {"rows": 5, "cols": 5, "word": 32}
    got = bench.load_boards(path, arrays={"ulx3s": (4, 4, 32)})["ulx3s"]
    assert got["array"] == {"rows": 4, "cols": 4, "word": 32} and got["fmax_mhz"] == 39.2 and got["seed"] == 2
    assert got["design"] == "accel+uart"
    with pytest.raises(ValueError, match=r"boards\.json: field 'boards\.ulx3s\.points': no fitting build with "
                                         r"array 6x6x32 \(fitting: 4x4x32, 5x5x32\)"):
        bench.load_boards(path, arrays={"ulx3s": (6, 6, 32)})
    with pytest.raises(ValueError, match=r"field 'boards\.icebreaker': no synthesis results"):
        bench.load_boards(path, arrays={"icebreaker": (1, 1, 8)})


def test_bench_cli_uses_the_curated_record_without_synthesizing(tmp_path, monkeypatch, capsys, build, use_record):
    """A build folder without bench/boards.json benches the curated record instead of starting an
    hour-long board search; --array picks its build; a malformed --array is a usage error."""
    use_record(records.record_from_boards(sweep.load_boards_json(_two_point_boards(tmp_path))))
    rc, seen = _bench_cli_without_synthesis(monkeypatch, ["--out", str(tmp_path), "--no-plots",
                                                          "--array", "ulx3s=5x5x32"])
    assert rc == 0
    assert seen["boards"]["ulx3s"]["array"] == {"rows": 5, "cols": 5, "word": 32}
    assert seen["boards"]["ulx3s"]["source"] == records.RECORD_LABEL
    rc, _ = _bench_cli_without_synthesis(monkeypatch, ["--out", str(tmp_path), "--array", "ulx3s:4x4x32"])
    assert rc == 2
    assert "expected BOARD=ROWSxCOLSxWORD" in capsys.readouterr().err

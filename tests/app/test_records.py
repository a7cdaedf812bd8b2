"""The curated record of the measured synthesis results (binaccel/measured.json, `binaccel records`) and
the build folder of the command line (`binaccel --build-dir`)."""

import argparse
import json

import pytest

from binaccel import bench, records
from binaccel.cli import main
from binaccel.commands import synth as synth_cmd
from binaccel.hw import sweep
from binaccel.sw import paths
from binaccel.sw.hwif import EngineParams

# the fields of a board summary the record leaves out (long, and not used by the bench)
_DROPPED = {"critical_paths", "runtime_s", "description", "design_class", "wrapping", "error", "source"}


@pytest.fixture
def build(tmp_path, monkeypatch):
    """``tmp_path / "build"`` as the build folder; the folder chosen by --build-dir is reset after."""
    monkeypatch.setattr(paths, "_chosen", None)
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "build"))
    return tmp_path / "build"


def _summary(board, design, rows, cols, word, fmax, *, fits=True, seed=1, closure=None):
    params = {**sweep.base_params(board, sweep.DESIGN_OF_KIND[design]), "rows": rows, "cols": cols, "word": word}
    report = {"board": board, "status": "ok" if fits else "no_fit", "fits": fits, "seed": seed, "params": params,
              "design_kind": design, "target_mhz": sweep.TARGET_MHZ[board], "clk_hz": sweep.TARGET_MHZ[board] * 1e6,
              "plan_sha256": "ab" * 32, "inputs_sha256": "cd" * 32, "tools": {"yosys": "Yosys 0.70"},
              "utilization": {"LUT": {"used": 1000 * rows * cols, "total": 83640, "resource": "LUT"},
                              "FF": {"used": 500, "total": 83640, "resource": "FF"},
                              "BRAM": {"used": 4, "total": 208, "resource": "BRAM"},
                              "DSP": {"used": 2, "total": 156, "resource": "DSP"}},
              "accel_clock": {"fmax_mhz": fmax, "met": False} if fits else None,
              "out_dir": f"build/synth/{board}/{design}/r{rows}c{cols}w{word}_s{seed}"}
    s = sweep.board_summary(report)
    if closure:
        s["closure"] = closure
    return s


def _boards(tmp_path):
    """A search's boards.json: ULX3S accelerator 4x4x32 and 5x6x32 (the best, timing closed at 25 MHz
    with margin 0.92), iCEBreaker accelerator not fitting, its engine + UART 2x2x32."""
    closure = {"met": True, "clock_mhz": 25.0, "fmax_mhz": 35.1, "margin": 0.92, "bitstream": "x/top.bit",
               "attempts": [{"clock_mhz": 150.0, "fmax_mhz": 34.0, "met": False, "status": "ok"}]}
    small = _summary("ulx3s", "accel+uart", 4, 4, 32, 39.0)
    large = _summary("ulx3s", "accel+uart", 5, 6, 32, 34.0, closure=closure)
    nofit = _summary("icebreaker", "accel+uart", 1, 1, 16, None, fits=False)
    link = _summary("icebreaker", "engine+uart", 2, 2, 32, 23.4)
    return sweep.write_boards_json(
        {"ulx3s": {"board": "ulx3s", "design": "accel+uart", "best": large, "points": [small, large],
                   "target_mhz": 150.0},
         "icebreaker": {"board": "icebreaker", "design": "accel+uart", "best": None, "points": [nofit],
                        "target_mhz": 48.0}},
        tmp_path / "search" / "boards.json",
        link_results={"icebreaker": {"board": "icebreaker", "design": "engine+uart", "best": link, "points": [link],
                                     "target_mhz": 48.0}})


def _params_of_command(command):
    """The full build parameters `binaccel synth` builds for a record's command, and its arguments."""
    p = argparse.ArgumentParser()
    synth_cmd.register(p.add_subparsers(dest="cmd", required=True))
    words = command.split()
    assert words[:2] == ["binaccel", "synth"]
    args = p.parse_args(words[1:])
    design = args.design
    n, word = sweep.start_point(args.board, design)
    base = {**sweep.base_params(args.board, design), "rows": n, "cols": n, "word": word}
    return sweep.full_params(synth_cmd._engine_fields(args, base, design), design), args


def test_record_keeps_the_best_point_per_board_and_design(tmp_path):
    record = records.record_from_boards(sweep.load_boards_json(_boards(tmp_path)), source="boards.json")
    assert set(record["boards"]) == {"icebreaker", "ulx3s"}
    assert set(record["boards"]["ulx3s"]) == {"accel+uart"}
    u = record["boards"]["ulx3s"]["accel+uart"]
    assert u["array"] == {"rows": 5, "cols": 6, "word": 32} and u["fits"] and u["fmax_mhz"] == 34.0
    assert u["bitstream_clock_mhz"] == 25.0 and u["plan_sha256"] == "ab" * 32 and u["tools"]["yosys"]
    assert u["params"] == sweep.full_params(u["params"], "accel")        # defaults filled in
    assert u["command"] == ("binaccel synth --board ulx3s --rows 5 --cols 6 --word 32 --close-timing "
                            "--closure-margin 0.92")
    ice = record["boards"]["icebreaker"]
    assert ice["accel+uart"]["fits"] is False and ice["accel+uart"]["tried"][0]["array"]["word"] == 16
    assert ice["engine+uart"]["command"] == "binaccel synth --board icebreaker --design engine-link --rows 2 --cols 2 --word 32"
    # every command builds the recorded point again
    for designs in record["boards"].values():
        for e in designs.values():
            if e["fits"]:
                params, args = _params_of_command(e["command"])
                assert params == e["params"] and args.seed == e["seed"]
                assert args.close_timing == bool(e["closure"])


def test_bench_reads_the_record_as_it_reads_the_search(tmp_path, build, use_record):
    """Without bench/boards.json in the build folder the bench's board figures are the record's: the
    same summaries as from the search's boards.json, the source named as the record."""
    path = _boards(tmp_path)
    use_record(records.record_from_boards(sweep.load_boards_json(path)))
    from_search, from_record = bench.load_boards(path), bench.load_boards()
    assert set(from_search) == set(from_record) == {"ulx3s", "icebreaker"}
    for board, s in from_search.items():
        r = from_record[board]
        assert r["source"] == records.RECORD_LABEL
        assert {k: v for k, v in r.items() if k not in _DROPPED | {"params"}} == \
            {k: v for k, v in s.items() if k not in _DROPPED | {"params"}}
        design = sweep.DESIGN_OF_KIND[s["design"]]
        assert r["params"] == sweep.full_params(s["params"], design)     # the defaults filled in
    assert "no accelerator build fits the board" in from_record["icebreaker"]["fallback"]
    with pytest.raises(ValueError, match=r"measured\.json: field 'boards\.ulx3s\.points': no fitting build"):
        bench.load_boards(arrays={"ulx3s": (4, 4, 32)})           # the record keeps the best point only


def test_installed_record(build):
    """The record the package installs: each board design's point, with a command that builds it again
    and the build-plan digest of the checked build plans."""
    record = records.load_record()
    u = record["boards"]["ulx3s"]["accel+uart"]
    assert u["array"] == {"rows": 5, "cols": 6, "word": 32} and u["bitstream_clock_mhz"] == 25.0
    assert u["plan_sha256"].startswith("eee6106a")
    ice = record["boards"]["icebreaker"]
    assert ice["accel+uart"]["fits"] is False
    assert ice["engine+uart"]["array"] == {"rows": 2, "cols": 2, "word": 32}
    assert ice["engine+uart"]["plan_sha256"].startswith("d6e94c30")
    for designs in record["boards"].values():
        for e in designs.values():
            if e["fits"]:
                assert _params_of_command(e["command"])[0] == e["params"]
    boards = bench.load_boards()
    assert boards["ulx3s"]["design"] == "accel+uart" and boards["icebreaker"]["design"] == "engine+uart"
    assert EngineParams(**{k: v for k, v in boards["icebreaker"]["params"].items()}).pe_stages == 2


def test_records_command(tmp_path, capsys, build):
    """`binaccel --build-dir DIR records --update --from FILE --markdown FILE`: the new record in
    DIR/records/measured.json and its results page; `binaccel records --record FILE` shows it."""
    path = _boards(tmp_path)
    md = tmp_path / "docs" / "results.md"
    assert main(["--build-dir", str(tmp_path / "b"), "records", "--update", "--from", str(path),
                 "--markdown", str(md)]) == 0
    assert paths.build_dir() == (tmp_path / "b").resolve()
    out = tmp_path / "b" / "records" / "measured.json"
    record = records.load_record(out)
    assert record["boards"]["ulx3s"]["accel+uart"]["array"]["cols"] == 6
    text = md.read_text()
    assert "| ulx3s | accel+uart | 5x6x32 | yes | 30000/83640 |" in text and "`abababababab`" in text
    assert "--closure-margin 0.92" in text and "| icebreaker | accel+uart | none fits" in text
    capsys.readouterr()
    assert main(["records", "--record", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ulx3s"]["accel+uart"]["bitstream_clock_mhz"] == 25.0
    assert shown["icebreaker"]["accel+uart"] == {"fits": False, "command": "binaccel synth --board icebreaker --search"}
    assert main(["records", "--update", "--from", str(tmp_path / "missing.json")]) == 2


def test_records_markdown_of_the_installed_record(tmp_path, build):
    """`binaccel records --markdown build/docs/results.md` (the docs build's results page)."""
    assert main(["records", "--markdown", str(build / "docs" / "results.md")]) == 0
    text = (build / "docs" / "results.md").read_text()
    assert "| ulx3s | accel+uart | 5x6x32 | yes |" in text and "`eee6106aca54`" in text


def test_build_dir_option_and_variable(tmp_path, monkeypatch, build):
    """The build folder is --build-dir, else $BINACCEL_BUILD_DIR, else ./build of the working directory."""
    assert paths.build_dir("bench") == (build / "bench").resolve()
    assert bench.bench_dir() == (build / "bench").resolve()
    assert bench.boards_json_path() == (build / "bench" / "boards.json").resolve()
    monkeypatch.delenv(paths.ENV_VAR)
    monkeypatch.chdir(tmp_path)
    assert bench.bench_dir() == tmp_path.resolve() / "build" / "bench"
    main(["--build-dir", str(tmp_path / "x"), "records", "--markdown", str(tmp_path / "r.md")])
    assert bench.bench_dir() == (tmp_path / "x" / "bench").resolve()

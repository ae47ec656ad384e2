"""The measured latency table: made on the CPU at 64 px (tiny repetitions: no timing is asserted),
validated, saved and loaded; its sums; every defect of a table file and of the command's options is
one line and exit status 2."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from cli_support import run

from sola_search.errors import SolaError
from sola_search.space import VARIANTS, Pattern, baseline
from sola_search.space.latency import FORMAT, LatencyTable, measure_latency

MICRO = VARIANTS["micro"]
# One torch thread: the test machine's cores are shared, and no timing is asserted.
QUICK = dict(batch=1, device="cpu", dtype="fp32", warmup=0, reps=1, threads=1)



@pytest.fixture(scope="module")
def table() -> LatencyTable:
    steps = []
    t = measure_latency("micro", 64, patterns=3, progress=lambda done, total, what: steps.append((done, total)),
                        **QUICK)
    assert steps[-1][0] == steps[-1][1]  # the progress callback reaches its total
    return t


@pytest.fixture
def saved(table, tmp_path) -> str:
    path = tmp_path / "micro.json"
    table.save(path)
    return str(path)


def test_a_table_lists_every_block_and_the_rest(table):
    assert table.variant.name == "micro" and table.resolution == 64 and table.device == "cpu"
    assert table.linear_ms.shape == table.softmax_ms.shape == (MICRO.num_blocks,)
    assert set(table.rest_ms) == {"stem", "downsample2", "downsample3", "downsample4", "head"}
    assert table.fixed_ms == pytest.approx(sum(table.rest_ms.values()) + table.gap_ms)
    assert np.all(table.linear_ms > 0) and np.all(table.softmax_ms > 0)
    at = 0
    for depth in MICRO.depths:  # one (stage, kind) timing listed for every block of the stage
        assert len(set(table.linear_ms[at : at + depth])) == len(set(table.softmax_ms[at : at + depth])) == 1
        at += depth
    assert {"device_name", "torch", "python", "sola_search", "host"} <= set(table.machine)
    assert {"warmup", "reps", "block_reps", "threads", "measured_at"} <= set(table.settings)
    assert table.settings["timing"] == "eager"  # CUDA graphs are a GPU's way of timing


def test_validation_is_recorded(table):
    val = table.validation
    assert val["patterns"] == 3 and len(val["samples"]) == 3
    errors = []
    for s in val["samples"]:
        assert s["predicted_ms"] == pytest.approx(table.ms(Pattern.parse(s["pattern"], "micro")))
        assert s["measured_ms"] > 0
        errors.append(abs(s["predicted_ms"] - s["measured_ms"]) / s["measured_ms"])
    assert val["median_rel_error"] == pytest.approx(np.median(errors))
    assert val["max_rel_error"] == pytest.approx(max(errors))
    parts = [abs(s["predicted_ms"] - table.gap_ms - s["measured_ms"]) / s["measured_ms"] for s in val["samples"]]
    assert val["parts_median_rel_error"] == pytest.approx(np.median(parts))
    assert val["parts_max_rel_error"] == pytest.approx(max(parts))


def test_a_table_made_before_the_gap_was_measured_loads_with_none(saved):
    _edit(saved, lambda d: d.pop("gap_ms"))
    old = LatencyTable.load(saved, "micro", 64)
    assert old.gap_ms == 0.0 and old.ms(baseline("all-linear", "micro")) == pytest.approx(old.all_linear_ms)


def test_ms_is_the_sum_of_its_parts_and_ms_many_agrees(table, rng):
    p = Pattern.parse("LS-SL-LLSS-SL", "micro")
    parts = table.fixed_ms + sum(s if b else lin for b, lin, s in zip(p.bits, table.linear_ms, table.softmax_ms,
                                                                         strict=True))
    assert table.ms(p) == pytest.approx(parts)
    assert table.ms(baseline("all-linear", "micro")) == pytest.approx(table.all_linear_ms)
    bits = rng.integers(0, 2, (500, MICRO.num_blocks))
    many = table.ms_many(bits)
    assert many == pytest.approx([table.ms(Pattern.from_bits(b, "micro")) for b in bits])


def test_the_median_error_warning(table):
    from dataclasses import replace

    assert replace(table, validation={"median_rel_error": 0.02}).warning() is None
    line = replace(table, validation={"median_rel_error": 0.25}).warning()
    assert "25.0%" in line and "\n" not in line


def test_save_and_load(table, saved):
    loaded = LatencyTable.load(saved, "micro", 64)
    assert loaded.digest == table.digest
    assert np.array_equal(loaded.linear_ms, table.linear_ms) and np.array_equal(loaded.softmax_ms, table.softmax_ms)
    assert loaded.fixed_ms == table.fixed_ms and loaded.validation == table.validation
    data = json.loads(open(saved).read())
    assert data["format"] == FORMAT and data["version"] == 1


def _edit(path, change) -> None:
    data = json.loads(open(path).read())
    change(data)
    open(path, "w").write(json.dumps(data))


CORRUPTIONS = {
    "not a latency table": lambda d: d.pop("format"),
    "version": lambda d: d.update(version=99),
    "missing softmax_ms": lambda d: d.pop("softmax_ms"),
    "finite, non-negative": lambda d: d["linear_ms"].__setitem__(2, -1.0),
    "linear_ms[0]": lambda d: d["linear_ms"].__setitem__(0, "fast"),
    "block times": lambda d: d["softmax_ms"].pop(),
    "fixed_ms": lambda d: d.update(fixed_ms=None),
    "rest_ms": lambda d: d["rest_ms"].update(head=float("inf")),
    "gap_ms": lambda d: d.update(gap_ms="small"),
    "would take no time": lambda d: d.update(fixed_ms=-1e6),
    "variant 'huge'": lambda d: d.update(variant="huge"),
    "resolution": lambda d: d.update(resolution="64"),
    "machine is list": lambda d: d.update(machine=[]),
    # Each time finite, their sum not: priced as inf (or NaN), with numpy's overflow warning on stderr.
    "add up to more than a number holds": lambda d: d.update(linear_ms=[1e308] * len(d["linear_ms"])),
}


@pytest.mark.parametrize("expected", CORRUPTIONS)
def test_a_corrupted_table_is_one_line(saved, expected):
    _edit(saved, CORRUPTIONS[expected])
    with pytest.raises(SolaError) as e:
        LatencyTable.load(saved)
    assert expected in str(e.value) and saved in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, expected", [("", "not JSON"), ("[1, 2]", "not a latency table"),
                                            ('{"format": "sola-search-latency-table", "version": 1, "x": NaN}',
                                             "missing")])
def test_a_file_that_is_not_a_table_is_one_line(tmp_path, text, expected):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(SolaError, match=expected):
        LatencyTable.load(path)


def test_nan_times_are_refused(saved):
    text = open(saved).read().replace(json.dumps(json.loads(open(saved).read())["fixed_ms"]), "NaN", 1)
    open(saved, "w").write(text)
    with pytest.raises(SolaError, match="fixed_ms"):
        LatencyTable.load(saved)


def test_a_table_of_another_variant_or_resolution_is_refused(saved):
    with pytest.raises(SolaError, match="measured for variant micro, not tiny"):
        LatencyTable.load(saved, "tiny", 64)
    with pytest.raises(SolaError, match="measured at 64px, not 128px"):
        LatencyTable.load(saved, "micro", 128)


# --- the command line ---------------------------------------------------------------------------------
def test_show_prints_the_predicted_latency(capsys, table, saved):
    status, out, err = run(capsys, "show", "late-stages", "--latency", saved)
    assert status == 0 and err == ""
    assert f"latency         {table.ms(baseline('late-stages', 'micro')):.3f} ms per batch of 1" in out
    assert "MACs" in out and "variant micro, 64px" in out  # the table's variant and resolution by default
    status, out, _ = run(capsys, "show", "LS-SL-LLSS-SL", "--latency", saved, "--json")
    info = json.loads(out)
    assert info["latency_ms"] == pytest.approx(table.ms(Pattern.parse("LS-SL-LLSS-SL")), abs=1e-4)
    assert info["gmacs"] > 0


@pytest.mark.parametrize("args, expected", [
    (["--variant", "tiny"], "measured for variant micro, not tiny"),
    (["--resolution", "224"], "measured at 64px, not 224px"),
])
def test_show_with_a_table_of_another_model_is_one_line(capsys, saved, args, expected):
    status, out, err = run(capsys, "show", "late-stages", "--latency", saved, *args)
    assert status == 2 and out == "" and expected in err and err.count("\n") == 1


def test_show_with_a_corrupted_table_is_one_line(capsys, saved):
    _edit(saved, CORRUPTIONS["missing softmax_ms"])
    status, out, err = run(capsys, "show", "late-stages", "--latency", saved)
    assert status == 2 and out == "" and "missing softmax_ms" in err and err.count("\n") == 1


BAD_OPTIONS = [
    (["--device", "tpu"], "device 'tpu'"),
    (["--dtype", "fp16"], "dtype 'fp16'"),
    (["--batch", "0"], "expected a whole number >= 1"),
    (["--resolution", "16"], "expected 32 to 4096 pixels"),
    (["--variant", "huge"], "unknown variant 'huge'"),
    (["--reps", "0"], "expected a whole number >= 1"),
    (["--warmup", "-1"], "expected a whole number >= 0"),
    (["--budget=-3softmax"], "not understood"),
]


@pytest.mark.parametrize("args, expected", BAD_OPTIONS)
def test_bad_latency_options_are_one_line(capsys, tmp_path, args, expected):
    status, out, err = run(capsys, "latency", "--variant", "micro", "--resolution", "64", "--device", "cpu",
                           "--out", str(tmp_path / "t.json"), *args)
    assert status == 2 and out == "" and expected in err and err.count("\n") == 1
    assert not (tmp_path / "t.json").exists()


def test_cuda_without_a_gpu_is_one_line(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    status, _, err = run(capsys, "latency", "--variant", "micro", "--device", "cuda", "--out", str(tmp_path / "t.json"))
    assert status == 2 and "no CUDA device" in err and err.count("\n") == 1


def test_latency_refuses_to_overwrite_what_is_not_a_table(capsys, tmp_path):
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    status, _, err = run(capsys, "latency", "--variant", "micro", "--resolution", "64", "--device", "cpu",
                         "--out", str(other))
    assert status == 2 and "not a latency table; refusing to overwrite it" in err
    assert other.read_text() == '{"mine": 1}'
    status, _, err = run(capsys, "latency", "--device", "cpu", "--out", str(tmp_path))
    assert status == 2 and "a directory" in err


@pytest.mark.parametrize("damaged", [False, True])
def test_latency_refuses_to_replace_a_table_before_measuring(capsys, saved, monkeypatch, damaged):
    """A table was silently replaced by a new measurement: a run made with it (run --latency stores its
    digest) then refused to resume, and the old times were gone. As calibrate --out: one line, nothing changed."""
    import sola_search.space.latency as latency

    if damaged:  # a table all the same: not the command's to replace
        with open(saved, "w") as f:
            f.write(json.dumps({"format": FORMAT, "version": 1}))
    before = open(saved, "rb").read()
    monkeypatch.setattr(latency, "_measure", lambda *a, **k: pytest.fail("measured before refusing --out"))
    status, out, err = run(capsys, "latency", "--variant", "micro", "--resolution", "64", "--device", "cpu",
                           "--batch", "1", "--out", saved)
    assert status == 2 and out == "" and err.count("\n") == 1, err
    assert f"--out {saved}: holds a latency table already" in err and "pass another --out, or move it away" in err
    assert damaged or "(micro at 64px, batch 1, fp32 on cpu, sha256 " in err
    assert open(saved, "rb").read() == before


def test_the_latency_command_runs_without_optuna_or_ray(tmp_path):
    """The device that measures has torch and timm but no optuna or ray: the command must not need them."""
    out = tmp_path / "t.json"
    code = ("import sys; sys.modules['optuna'] = sys.modules['ray'] = None\n"  # importing either now fails
            "from sola_search.cli import main\n"
            f"sys.exit(main(['latency', '--variant', 'micro', '--resolution', '64', '--batch', '1', '--device', 'cpu',"
            f" '--reps', '1', '--warmup', '0', '--patterns', '2', '--threads', '1', '--out', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "validation: 2 random patterns" in done.stdout and f"wrote {out}" in done.stdout
    for stage in ("1", "2", "3", "4"):
        assert any(line.startswith(stage) for line in done.stdout.splitlines())
    t = LatencyTable.load(out, "micro", 64)
    assert t.batch == 1 and t.settings["threads"] == 1 and math.isfinite(t.validation["median_rel_error"])


def test_an_out_path_under_a_file_is_one_line_before_measuring(capsys, tmp_path, monkeypatch):
    """--out under a regular file is refused before minutes of measuring, in one line."""
    import sola_search.space.latency as latency

    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    monkeypatch.setattr(latency, "_measure", lambda *a, **k: pytest.fail("measured before refusing --out"))
    status, out, err = run(capsys, "latency", "--variant", "micro", "--resolution", "64", "--device", "cpu",
                           "--out", str(other / "t.json"))
    assert status == 2 and out == "" and err.count("\n") == 1 and "is not a directory" in err
    assert other.read_text() == '{"mine": 1}'


def test_a_table_makes_its_missing_folders_and_a_failed_write_leaves_none(table, tmp_path, monkeypatch):
    """As every command that writes a file: missing folders above --out are made (after measuring, once
    everything is checked), and a write that fails removes the ones it made."""
    import errno

    import sola_search.space.latency as latency

    table.save(tmp_path / "a" / "b" / "t.json")
    assert LatencyTable.load(tmp_path / "a" / "b" / "t.json").batch == table.batch

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(latency, "write_atomic", full)
    with pytest.raises(SolaError, match="No space left on device"):
        table.save(tmp_path / "n" / "m" / "t.json")
    assert not (tmp_path / "n").exists()


def test_a_table_that_cannot_be_written_is_one_line(table, tmp_path, monkeypatch):
    """A file system that refuses the table (full, read-only, /proc) is a SolaError naming the file, not an OSError."""
    import errno

    import sola_search.space.latency as latency

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(latency, "write_atomic", full)
    with pytest.raises(SolaError, match="cannot write latency table .*t.json: No space left on device") as e:
        table.save(tmp_path / "t.json")
    assert "\n" not in str(e.value)


def test_the_latency_command_writes_nothing_to_a_stderr_that_is_not_a_terminal(capsys, tmp_path):
    """The progress bar is for a terminal: piped or captured, stderr holds only warnings and errors (it held
    an empty line, which made an error after the measuring its second line)."""
    status, out, err = run(capsys, "latency", "--variant", "micro", "--resolution", "64", "--batch", "1",
                           "--device", "cpu", "--reps", "1", "--warmup", "0", "--patterns", "0", "--threads", "1",
                           "--out", str(tmp_path / "t.json"))
    assert status == 0 and "wrote" in out and err == ""

"""`sola-search show` and `sola-search space`: output, JSON keys scripts rely on, and bad input."""

import json
from math import comb

import pytest
from cli_support import run

from sola_search.space import VARIANTS, Budget, FeasibleSet, Pattern, baseline, baselines, model_cost


@pytest.mark.parametrize("variant, resolution", [("tiny", 224), ("small", 193), ("micro", 512)])
def test_show_json(capsys, variant, resolution):
    p = baseline("mambavision", variant)
    status, out, err = run(capsys, "show", str(p).lower(), "--variant", variant, "--resolution", str(resolution),
                           "--json")
    assert status == 0 and err == ""
    info = json.loads(out)
    cost = model_cost(variant, p, resolution)
    assert {"pattern", "variant", "resolution", "macs", "params", "softmax_layers"} <= set(info)
    assert info["pattern"] == str(p) and info["variant"] == variant and info["resolution"] == resolution
    assert info["macs"] == cost.macs and info["params"] == cost.params
    assert info["softmax_layers"] == p.softmax_layers
    assert info["gflops"] == pytest.approx(2 * info["gmacs"]) and info["gmacs"] == pytest.approx(cost.gmacs, abs=1e-4)
    assert info["layer_types"] == p.layer_types


def test_show_text(capsys):
    status, out, err = run(capsys, "show", "LL-LS-LLSLLS-SS", "--variant", "tiny")
    assert status == 0 and err == ""
    cost = model_cost("tiny", Pattern.parse("LL-LS-LLSLLS-SS"), 224)
    assert out.splitlines()[0].startswith("LL-LS-LLSLLS-SS") and "tiny" in out and "224px" in out
    assert "softmax layers  5 of 12" in out
    assert f"{cost.gmacs:.3f} G" in out and f"({cost.gflops:.3f} GFLOPs)" in out
    assert f"{cost.mparams:.2f} M" in out
    stages = [line for line in out.splitlines() if line.strip().startswith("stage")]
    assert len(stages) == 4
    assert "56×56 tokens" in stages[0] and "7×7 tokens" in stages[3]  # strides 4 and 32 at 224 px
    assert "S" in stages[1] and "512 ch, 8 heads" in stages[3]


def test_show_defaults_to_the_variant_run_and_proxy_use(capsys):
    """`show late-stages` drew tiny while `run` and `proxy` search small: one default everywhere."""
    from sola_search.proxies.config import ProxyConfig
    from sola_search.search.config import DEFAULTS

    for argv in (["show", "late-stages"], ["show", "late-stages", "--json"]):
        status, out, _ = run(capsys, *argv)
        assert status == 0 and out.count(DEFAULTS["variant"]) >= 1 and "tiny" not in out
    assert json.loads(run(capsys, "show", "late-stages", "--json")[1])["variant"] == DEFAULTS["variant"] == \
        ProxyConfig().variant


def test_show_rounding_resolution_token_counts(capsys):
    _, out, _ = run(capsys, "show", "late-stages", "--resolution", "193")
    assert [s for s in ("49×49", "25×25", "13×13", "7×7") if s in out] == ["49×49", "25×25", "13×13", "7×7"]


@pytest.mark.parametrize("name", ["late-stages", "all-linear", "last-3", "interleave-5", "mambavision"])
def test_show_accepts_a_baseline_name(capsys, name):
    status, out, _ = run(capsys, "show", name, "--variant", "small", "--json")
    assert status == 0
    p = baseline(name, "small")
    info = json.loads(out)
    assert info["pattern"] == str(p) and info["macs"] == model_cost("small", p).macs


def test_show_accepts_a_pattern_file(capsys, tmp_path):
    p = baseline("interleave-3", "micro")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"variant": "micro", "layer_types": p.layer_types}))
    status, out, _ = run(capsys, "show", str(path), "--variant", "micro", "--json")
    assert status == 0 and json.loads(out)["pattern"] == str(p)
    status, out, _ = run(capsys, "show", str(path), "--json")  # the file names its variant
    assert status == 0 and json.loads(out)["variant"] == "micro" and json.loads(out)["pattern"] == str(p)
    status, _, err = run(capsys, "show", str(path), "--variant", "tiny")
    assert status == 2 and "made for variant 'micro', not 'tiny'" in err
    path.write_text(json.dumps({"variant": "micro", "resolution": 160, "layer_types": p.layer_types}))
    status, out, _ = run(capsys, "show", str(path), "--json")  # ... and the resolution it was measured at
    assert status == 0 and json.loads(out)["resolution"] == 160


def test_a_pattern_file_edited_out_of_agreement_or_not_text_is_one_line(capsys, tmp_path):
    p = baseline("interleave-3", "micro")
    edited = [*p.layer_types[:-1], "softmax" if p.layer_types[-1] == "linear" else "linear"]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps({"variant": "micro", "pattern": str(p), "layer_types": edited}))
    status, _, err = run(capsys, "show", str(path))
    assert status == 2 and "does not match 'layer_types'" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    status, _, err = run(capsys, "show", str(tmp_path / "bin.json"))
    assert status == 2 and "pattern file" in err and len(err.strip().splitlines()) == 1


def test_space_lists_every_variant(capsys):
    status, out, err = run(capsys, "space")
    assert status == 0 and err == ""
    lines = out.splitlines()
    for name, v in VARIANTS.items():
        line = next(line for line in lines if line.startswith(name))
        assert "depths " + "-".join(map(str, v.depths)) in line
        assert f"{v.num_blocks} blocks" in line and f"{2**v.num_blocks:,} patterns" in line


def test_space_with_budget(capsys):
    status, out, _ = run(capsys, "space", "--budget", "8softmax")
    assert status == 0
    for name, v in VARIANTS.items():
        n = sum(comb(v.num_blocks, k) for k in range(9))
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert f"{n:,} within 8softmax at 224px" in line


def test_a_budget_that_admits_every_pattern_says_so(capsys):
    """100softmax on micro (10 blocks) limits nothing: one warning line on stderr, the table as ever."""
    status, out, err = run(capsys, "space", "--variant", "micro", "--budget", "100softmax")
    assert status == 0 and "1,024 within 100softmax" in out
    assert err.count("\n") == 1 and "warning: budget 100softmax admits every pattern of micro at 224px" in err
    status, out, err = run(capsys, "space", "--budget", "12softmax", "--json")
    assert status == 0 and json.loads(out) and "admits every pattern of micro, tiny at 224px" in err
    assert run(capsys, "space", "--budget", "8softmax")[2] == ""


def test_space_one_variant_lists_its_baselines(capsys):
    status, out, _ = run(capsys, "space", "--variant", "tiny", "--budget", "8softmax,2.6gmacs")
    assert status == 0
    b = Budget.parse("8softmax,2.6gmacs")
    assert f"{FeasibleSet('tiny', b).count():,} within 8softmax,2.6gmacs at 224px" in out
    assert "baseline late-stages" in out and "LL-LL-SSSSSS-SS" in out
    listed = [line.split()[1] for line in out.splitlines() if line.strip().startswith("baseline")]
    assert listed == list(baselines("tiny", b)) and "all-softmax" not in listed  # 12 softmax blocks > 8


def test_space_json(capsys):
    status, out, _ = run(capsys, "space", "--variant", "micro", "--budget", "3softmax", "--resolution", "160",
                         "--json")
    assert status == 0
    [row] = json.loads(out)
    assert row["variant"] == "micro" and row["blocks"] == 10 and row["patterns"] == 1024
    assert row["feasible"] == 1 + 10 + 45 + 120 and row["budget"] == "3softmax"
    assert row["baselines"]["last-3"] == str(baseline("last-3", "micro"))


@pytest.mark.parametrize("argv, match", [
    (["show", "LL-LX-LLSLLS-SS"], "stage 2 'LX': found letters 'X'"),
    (["show", "LLL-LLSLL-LLSLL-SS"], "stage 3 'LLSLL': found 5 blocks, expected 9 for variant small"),
    (["show", "LL-LS-SS"], "found 3 stages, expected 4"),
    (["show", "nonsense"], "stage 1 'NONSENSE'"),
    (["show", "late-stages", "--variant", "huge"], "unknown variant 'huge'"),
    (["show", "late-stages", "--resolution", "abc"], "resolution 'abc': expected a whole number of pixels"),
    (["show", "late-stages", "--resolution", "16"], "resolution 16: expected 32 to 4096 pixels"),
    (["show", "last-99"], "baseline 'last-99': k must be between 1 and 20"),
    (["show", "interleave-0", "--variant", "small"], "k must be between 1 and 10"),
    (["show", "/nonexistent/p.json"], "pattern file /nonexistent/p.json"),
    (["show"], "the following arguments are required: pattern"),
    (["space", "--budget", "8tflops"], "budget term '8tflops' not understood"),
    (["space", "--budget", "1.5softmax"], "whole number"),
    (["space", "--budget", "8softmax,4softmax"], "twice"),
    (["space", "--budget", "0gmacs"], "positive"),
    (["space", "--variant", "huge"], "unknown variant 'huge'"),
    (["space", "--resolution", "x"], "resolution 'x'"),
    (["bogus"], "no command 'bogus' (choose from 'show'"),
])
def test_bad_input_is_one_line_and_status_2(capsys, argv, match):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("sola-search") and "error" in err
    assert match in err


def test_help_speaks_to_users():
    """The top-level help printed an internal note; subcommands had no description; --sampler did not
    list its choices; `run --data` left out fashion-mnist:DIR."""
    import argparse
    import re

    from sola_search.cli import build_parser
    from sola_search.proxies.data import SOURCES
    from sola_search.search.encodings import DEFAULT_ENCODING, ENCODINGS

    parser = build_parser()
    assert "argument parsing" not in parser.format_help() and "printing only" not in parser.format_help()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert p.description and len(p.description.splitlines()) == 1, name
    run_help = " ".join(sub.choices["run"].format_help().split())
    assert all(e in run_help for e in ENCODINGS) and f"{DEFAULT_ENCODING} (default" in run_help
    sources = re.split(r", | or ", SOURCES)  # every data source the loader takes
    assert "fashion-mnist:DIR" in sources
    for cmd in ("run", "proxy"):
        assert all(x in " ".join(sub.choices[cmd].format_help().split()) for x in sources), cmd


def test_run_calibration_help_names_everything_it_takes():
    """`run --help` said --calibration takes the data, variant and preset when not given; it takes the
    calibration's batch size, learning rate and score too (apply_calibration, as the README says): a user
    who left --lr out to get the preset's got the calibration's."""
    import argparse

    from sola_search.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices["run"]._actions if a.dest == "calibration")
    assert all(w in action.help for w in ("data", "variant", "preset", "batch size", "learning rate", "score")), \
        action.help

def test_the_readme_journey_follows_from_its_set_up_command():
    """The journey used `sola-search` (not on PATH without activating .venv) and runs/first (the
    set-up command's run is named small-8softmax-<time>): each `$` line must work, pasted in order
    after the set-up command."""
    import re
    import shlex
    from pathlib import Path

    from sola_search.cli import build_parser

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    setup = next(line for line in readme.splitlines() if line.startswith("bash scripts/setup.sh && "))
    first = shlex.split(setup.split("&&", 1)[1])
    name = first[first.index("--name") + 1]
    journey = readme[readme.index("## The journey"):]
    commands = [line[2:].split("  #")[0].strip() for line in journey.splitlines() if line.startswith("$ ")]
    assert commands[0] == ". .venv/bin/activate", commands
    for command in commands[1:]:
        argv = shlex.split(command)
        assert argv[0] == "sola-search", command
        args = build_parser().parse_args(argv[1:])  # each line is valid for the CLI it documents
        if getattr(args, "run", None):
            assert args.run == f"runs/{name}", command
        if args.command == "run":
            assert args.name == name, command
    block = journey.split("```")[1]  # the journey's output names no other run either
    assert set(re.findall(r"runs/([\w-]+)", block)) == {name}

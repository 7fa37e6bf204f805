"""The walkthrough (docs/lineage.md, docs/lineage.ko.md) against the code: every number in its exercise tables
is recomputed with the project's functions, the two languages carry the same numbers, and every
``python -m bridge zoo|analyze`` command in the docs and the README runs (on tiny settings); ``run``, ``vla`` and
``fit`` commands, which train, are checked against their --help and their config files only."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from bridge import create_model
from bridge.analysis.receptive_field import compare_stacks, gradient_map, measured_size, sequential_receptive_field
from bridge.analysis.summary import count_macs, summarize
from bridge.cli import human, main
from bridge.models.resnet import BasicBlock, Bottleneck

ROOT = Path(__file__).resolve().parents[1]
DOCS = {"en": ROOT / "docs" / "lineage.md", "ko": ROOT / "docs" / "lineage.ko.md"}
# The walkthrough's tables, in the order both languages print them.
TABLES = ["lineage", "vgg16 blocks", "3x3 stacks", "receptive fields", "gradient flow", "shortcuts", "bottleneck",
          "degradation", "lineage results"]  # fmt: skip


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in ``text``: its body rows (header and rule dropped) as lists of cells."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            found.append(current[2:])
            current = []
    return found


def doc_tables(lang: str) -> dict[str, list[list[str]]]:
    found = tables(DOCS[lang].read_text())
    assert len(found) == len(TABLES), f"{DOCS[lang].name} has {len(found)} tables, expected {TABLES}"
    return dict(zip(TABLES, found))


def numbers(cell: str) -> list[str]:
    return re.findall(r"\d+(?:,\d{3})*(?:\.\d+)?", cell)


def count(cell: str) -> int:
    return int(cell.split()[0].replace(",", ""))


@pytest.fixture(scope="module", params=["en", "ko"])
def doc(request) -> dict[str, list[list[str]]]:
    return doc_tables(request.param)


def test_both_languages_carry_the_same_numbers():
    en, ko = doc_tables("en"), doc_tables("ko")
    for name in TABLES:
        assert len(en[name]) == len(ko[name]), name
        for row_en, row_ko in zip(en[name], ko[name]):
            # the same numbers in the same column (word order inside a cell may differ between languages)
            assert [sorted(numbers(c)) for c in row_en] == [sorted(numbers(c)) for c in row_ko], name


def test_vgg16_block_by_block(doc):
    with torch.device("meta"):
        vgg = create_model("vgg16")
    summary = summarize(vgg, (3, 224, 224), depth="block")
    rows = [r for r in summary.rows if r.params]  # the five conv blocks, then the three FC layers
    table = doc["vgg16 blocks"]
    assert len(table) == len(rows) + 1
    for (_, _, output, params, macs), row in zip(table, rows):
        assert output == "x".join(map(str, row.output_shape[1:])), row.name
        assert count(params) == row.params and macs == human(row.macs), row.name
    assert [r.name for r in rows[:5]] == ["features.0-4", "features.5-9", "features.10-16", "features.17-23",
                                         "features.24-30"]  # fmt: skip
    assert [r.params for r in rows[:5]] == [38_720, 221_440, 1_475_328, 5_899_776, 7_079_424]
    *_, params, macs = table[-1]
    assert count(params) == summary.total_params == 138_357_544 and macs == human(summary.total_macs) == "15.47 G"


def test_stacked_3x3_table(doc):
    for (stack, field, stacked, single, ratio), r in zip(doc["3x3 stacks"], compare_stacks(3, 3, 64), strict=True):
        assert stack == f"{r.layers} x 3x3" and field == f"{r.receptive_field}x{r.receptive_field}"
        assert (count(stacked), count(single)) == (r.stacked_weights, r.single_weights)
        assert ratio == f"{r.stacked_weights / r.single_weights:.2f}"


@pytest.mark.slow
def test_receptive_field_table_is_analytic_and_measured():
    # English only: test_both_languages_carry_the_same_numbers pins the Korean table to it.
    models = {}
    for name, layer, analytic, measured in doc_tables("en")["receptive fields"]:
        side = int(re.search(r"\((\d+)x\d+\)", measured).group(1))
        torch.manual_seed(0)
        model = models.setdefault(name, create_model(name))
        layer = layer.split("`")[1]
        expected = sequential_receptive_field(model, layer)
        assert analytic == f"{expected}x{expected}", (name, layer)
        size = measured_size(gradient_map(model, layer, (3, side, side), samples=1))  # seeded: exact
        assert measured.startswith(f"{size}x{size} "), (name, layer, size)


def test_shortcut_parameter_counts(doc):
    in_chans = {"digits": 1, "CIFAR": 3, "ImageNet": 3}
    for name, data, *options in doc["shortcuts"]:
        with torch.device("meta"):
            params = [sum(p.numel() for p in create_model(name, shortcut=o, in_chans=in_chans[data.split(",")[0]])
                          .parameters()) for o in "ABC"]  # fmt: skip
        assert [count(c) for c in options] == params, name
        assert [numbers(c)[1:] for c in options[1:]] == [[f"{p - params[0]:,}"] for p in params[1:]], name


def test_bottleneck_arithmetic(doc):
    with torch.device("meta"):
        blocks = [(Bottleneck(256, 64), 256), (BasicBlock(64, 64), 64), (BasicBlock(256, 256), 256)]
        resnet50 = create_model("resnet50")
    for (_, _, weights, macs), (block, channels) in zip(doc["bottleneck"], blocks, strict=True):
        assert count(weights) == sum(p.numel() for p in block.parameters() if p.ndim == 4)
        assert macs == human(count_macs(block, torch.empty(1, channels, 56, 56, device="meta")))
    assert [count(r[2]) for r in doc["bottleneck"]] == [69_632, 73_728, 1_179_648]  # the paper's Figure 5
    summary = summarize(resnet50, (3, 224, 224), depth="block")
    for lang, path in DOCS.items():  # ResNet-50's totals and the ratios quoted in the prose
        text = path.read_text()
        assert f"{summary.total_params:,}" in text and f"{summary.total_macs / 1e9:.2f} GMACs" in text, lang
        assert f"{1 - 69_632 / 73_728:.1%}" in text and f"{1_179_648 / 69_632:.1f}" in text, lang


def test_vgg16_totals_quoted_in_the_prose():
    with torch.device("meta"):
        rows = summarize(create_model("vgg16"), (3, 224, 224), depth="block").rows
    conv = [r for r in rows if r.name.startswith("features")]
    fc = [r for r in rows if r.name.startswith("classifier")]
    quoted = [f"{sum(r.params for r in conv) / 1e6:.1f} M", f"{sum(r.macs for r in conv) / 1e9:.2f}",
              f"{sum(r.params for r in fc) / 1e6:.1f} M", f"{sum(r.macs for r in fc) / 1e9:.2f} GMACs"]  # fmt: skip
    for lang, path in DOCS.items():
        text = path.read_text()
        assert all(q in text for q in quoted), (lang, [q for q in quoted if q not in text])


# -- every command in the docs -----------------------------------------------------------------------------


def commands() -> list[str]:
    """``python -m bridge ...`` commands of the walkthrough (both languages) and the README, deduplicated."""
    found: dict[str, None] = {}
    for path in [*DOCS.values(), ROOT / "README.md"]:
        text = path.read_text().replace("\\\n", " ")
        lines = re.findall(r"^python -m bridge (.+)$", text, flags=re.M)
        lines += re.findall(r"`python -m bridge ([^`]+)`", text)
        for line in lines:
            found[" ".join(shlex.split(line.split("  #")[0].split(" #")[0]))] = None
    return list(found)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf")  # the digits are built once for every gradient-flow command


# Tiny settings appended to the documented arguments (argparse keeps the last occurrence).
TINY = {
    ("analyze", "gradient-flow"): ["--steps", "1", "--batch-size", "4"],
    ("analyze", "receptive-field"): ["--samples", "1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in commands() if c.split()[0] in ("zoo", "analyze")])
def test_zoo_and_analyze_commands_run(command, tmp_path, hf_cache, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(hf_cache))
    argv = shlex.split(command)
    extra = TINY.get(tuple(argv[:2]), [])
    main(argv + extra + (["--out", str(tmp_path / "out")] if argv[0] == "analyze" and argv[1] != "bottleneck" else []))
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("command", [c for c in commands() if c.split()[0] in ("run", "vla")])
def test_recipe_and_vla_commands_parse(command, capsys):
    """These train or roll out policies, so only their options are checked: every flag and choice they use is in
    their --help."""
    argv = shlex.split(command)
    with pytest.raises(SystemExit) as exit_:
        main([*argv[:2], "--help"])
    assert exit_.value.code in (0, None)
    usage = capsys.readouterr().out
    for i, arg in enumerate(argv[2:], start=2):
        if arg.startswith("--trainer.") and "--trainer." in usage:
            continue  # passed through to Lightning's Trainer, which checks it when the recipe builds one
        if arg.startswith("--"):
            assert re.search(rf"{re.escape(arg.split('=')[0])}\b", usage), f"{command}: {arg} not in --help"
            choices = re.search(rf"{re.escape(arg)} \{{([^}}]+)\}}", usage)
            if choices and i + 1 < len(argv):
                assert argv[i + 1] in choices.group(1).split(","), f"{command}: {argv[i + 1]} not a choice"


def test_fit_commands_name_existing_configs():
    for command in (c for c in commands() if c.split()[0] in ("fit", "validate", "test")):
        argv = shlex.split(command)
        assert (ROOT / argv[argv.index("--config") + 1]).is_file(), command

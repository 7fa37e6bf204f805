"""The docs against the code.

The walkthrough (docs/lineage.md, docs/lineage.ko.md): every number in its exercise tables is recomputed with the
project's functions, and the two languages carry the same numbers.

Every command shown in README.md, docs/*.md and benchmarks/README.md: ``python -m bridge zoo|analyze`` runs (on
tiny settings); the commands that train or roll out are parsed by their own parsers without running: ``vla`` by
bridge's argparse parser (and its ``--world-options`` by the world), ``run <recipe>`` by the recipe's parser,
``fit|validate|test|predict`` by LightningCLI with ``--print_config``; ``torchrun`` and ``fabric run`` lines by the
launcher's parser, then their bridge part as above; ``python benchmarks/<script>.py`` by the script's parser;
``hf``, ``wandb`` and ``make`` lines against their --help or the Makefile; ``lightning`` lines (docs/cloud.md) by
lightning-sdk's click commands, their ``--command`` as a bridge command, and ``pip install`` lines' extras against
pyproject.toml."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bridge import create_model
from bridge.analysis.receptive_field import compare_stacks, gradient_map, measured_size, sequential_receptive_field
from bridge.analysis.summary import count_macs, summarize
from bridge.cli import main
from bridge.model_commands import human
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

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`((?:\w+=\S+ )*(?:python -m bridge|python benchmarks/|torchrun|fabric run)(?: [^`]*)?)`")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
BIN = Path(sys.executable).parent  # the venv's console scripts: hf, wandb
# docs/extending.md's plugin files: its commands name the encoder, world and recipe they register.
EXTENDING = dict(re.findall(r"```python\n# (\w+\.py)\n(.*?)```", (ROOT / "docs" / "extending.md").read_text(), re.S))
PLUGINS = ",".join(name.removesuffix(".py") for name in EXTENDING)


def shown_commands() -> list[tuple[str, tuple[str, ...]]]:
    """(page, tokens) of every command the pages show: each line of their bash blocks (continuation lines joined,
    shell comments and leading VAR=value assignments dropped) and each inline `python -m bridge ...`, `python
    benchmarks/...`, `torchrun ...` or `fabric run ...` of their prose."""
    found = []
    for page in PAGES:
        text = page.read_text()
        lines = [line for block in SHELL_BLOCK.findall(text) for line in block.replace("\\\n", " ").splitlines()]
        lines += INLINE.findall(re.sub(r"\s+", " ", SHELL_BLOCK.sub("", text)))
        for line in lines:
            tokens = shlex.split(line, comments=True)
            while tokens and ENV_ASSIGNMENT.match(tokens[0]):
                tokens.pop(0)
            if tokens:
                found.append((page.relative_to(ROOT).as_posix(), tuple(tokens)))
    return found


def kind(tokens: tuple[str, ...]) -> str:
    if tokens[:3] == ("python", "-m", "bridge"):
        return "bridge"
    if tokens[0] == "python" and len(tokens) > 1 and tokens[1].startswith("benchmarks/"):
        return "benchmark"
    if tokens[0] == "torchrun" or tokens[:2] == ("fabric", "run"):
        return "launcher"
    if tokens[0] == "lightning" or tokens[:2] == ("pip", "install"):
        return "cloud"
    return tokens[0] if tokens[0] in ("hf", "wandb", "make", "export") else "unknown"


def bridge_part(tokens: tuple[str, ...]) -> list[str] | None:
    """The arguments a command hands to bridge (``python -m bridge ARGS``, or launched by torchrun or fabric)."""
    if kind(tokens) == "bridge":
        return list(tokens[3:])
    if kind(tokens) == "cloud" and "--command" in tokens:
        return bridge_part(tuple(shlex.split(tokens[tokens.index("--command") + 1])))
    if kind(tokens) == "launcher":
        for i, token in enumerate(tokens[:-1]):
            if (token, tokens[i + 1]) == ("-m", "bridge"):
                return list(tokens[i + 2 :])
            if token.endswith("bridge/__main__.py"):
                return list(tokens[i + 1 :])
    return None


SHOWN = shown_commands()
COMMANDS = list(dict.fromkeys(tokens for _, tokens in SHOWN))  # each once, in the order the pages show them
BRIDGE = list(dict.fromkeys(tuple(part) for t in COMMANDS if (part := bridge_part(t)) is not None))


def of_kind(*kinds: str) -> list[tuple[str, ...]]:
    return [tokens for tokens in COMMANDS if kind(tokens) in kinds]


def label(command) -> str:
    return " ".join(command)


class Parsed(Exception):
    """Raised in place of the work that follows a successful parse."""

    def __init__(self, namespace) -> None:
        super().__init__("parsed")
        self.namespace = namespace


def quietly(call):
    """``call()`` with its output captured; a non-zero SystemExit (a parser's error) fails with what was said."""
    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        try:
            return call(), said.getvalue()
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                raise AssertionError(f"exit {exit_.code!r}: {said.getvalue()[-3000:]}") from None
            return None, said.getvalue()


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    for name, code in EXTENDING.items():
        (folder / name).write_text(code)
    return folder


@contextlib.contextmanager
def at_root(plugins: Path):
    """Where the docs' commands run: the repository root, with docs/extending.md's plugins importable."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.syspath_prepend(str(plugins))
        mp.setenv("BRIDGE_PLUGINS", PLUGINS)
        yield mp


def bridge_commands() -> set[str]:
    from bridge.cli import build_parser

    parser = build_parser()
    return set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def check_bridge(argv: list[str], mp: pytest.MonkeyPatch) -> None:
    if not argv:
        return  # the program itself, named in prose
    assert argv[0] in bridge_commands(), f"python -m bridge has no command {argv[0]!r}"
    if len(argv) == 1:
        return  # a command named in prose, `python -m bridge fit`
    if argv[0] in LIGHTNING_COMMANDS:
        _, said = quietly(lambda: main([*argv, "--print_config"]))
        assert "trainer:" in said, said[-2000:]
    elif argv[0] == "run":
        check_recipe(argv[1:], mp)
    else:  # vla, zoo, analyze: bridge's argparse parser
        from bridge.cli import build_parser

        namespace, _ = quietly(lambda: build_parser().parse_args(argv))
        if getattr(namespace, "world_options", None) and namespace.world:
            from bridge.vla import get_world
            from bridge.vla.commands import parse_options

            get_world(namespace.world, **parse_options(namespace.world_options))


def check_recipe(argv: list[str], mp: pytest.MonkeyPatch) -> None:
    """``run <recipe> ARGS``: the recipe's own parser reads them (recipes.kit.parse), then stops before any work."""
    if argv[0].startswith("-"):
        quietly(lambda: main(["run", *argv]))  # the listing
        return
    from recipes import kit

    real = kit.parse

    def parse(parser, given):
        raise Parsed(real(parser, given))

    mp.setattr(kit, "parse", parse)
    try:
        quietly(lambda: main(["run", *argv]))
    except Parsed as parsed:
        if argv[0] == "lineage":
            check_lineage_arms(parsed.namespace)
        return
    assert "--help" in argv, f"run {argv[0]} did not read its options with recipes.kit.parse"


def check_lineage_arms(args) -> None:
    """``--preset`` names a preset or a preset file, and the labels of ``--arms`` name policies of the preset, world
    and timm model given."""
    from recipes.lineage.presets import arms, load_preset

    _, preset = load_preset(args.preset)
    if not args.arms:
        return
    given = {"timm": args.timm, "world": args.world, "pretrain_vit": args.vit_pretraining}
    preset = replace(preset, arms=(), **{k: v for k, v in given.items() if v is not None})
    known = [arm.label for arm in arms(preset, args.vit_weights, None)]
    assert set(args.arms) <= set(known), f"--arms {args.arms}: the policies here are {known}"


def launched(tokens: tuple[str, ...]) -> list[str]:
    """A launcher line parsed by the launcher; the arguments it hands to bridge."""
    if tokens[0] == "torchrun":
        from torch.distributed.run import get_args_parser

        args, _ = quietly(lambda: get_args_parser().parse_args(tokens[1:]))
        script, rest = args.training_script, list(args.training_script_args)
        assert (args.module and script == "bridge") or (ROOT / script).resolve() == ROOT / "bridge" / "__main__.py"
        return rest
    import click
    from lightning.fabric.cli import _run

    try:
        params = _run.make_context("run", list(tokens[2:])).params
    except click.UsageError as err:
        raise AssertionError(f"fabric run: {err}") from None
    assert (ROOT / params["script"]).resolve() == ROOT / "bridge" / "__main__.py", params["script"]
    return list(params["script_args"])


def check_benchmark(tokens: tuple[str, ...], mp: pytest.MonkeyPatch) -> None:
    """``python benchmarks/<script>.py ARGS``: the script's argparse parser reads them, then stops before any work."""
    script = ROOT / tokens[1]
    assert script.is_file(), f"no {tokens[1]}"
    real = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    mp.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    mp.setattr(sys, "argv", [str(script), *tokens[2:]])
    mp.syspath_prepend(str(script.parent))
    try:
        quietly(lambda: runpy.run_path(str(script), run_name="__main__"))
    except Parsed:
        return
    raise AssertionError(f"{tokens[1]} did not parse its options with argparse")


def check_tool(tokens: tuple[str, ...]) -> None:
    if tokens[0] == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in tokens[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"the Makefile has no target {target}"
        return
    if tokens[0] == "export":
        assert all(ENV_ASSIGNMENT.match(t) for t in tokens[1:]), tokens
        return
    shown = subprocess.run([str(BIN / tokens[0]), tokens[1], "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, f"{tokens[0]} {tokens[1]} --help: {shown.stderr[-2000:]}"
    for arg in tokens[2:]:
        if arg.startswith("--"):
            assert re.search(rf"{re.escape(arg.split('=')[0])}\b", shown.stdout), f"{arg} not in its --help"
    if tokens[:2] == ("hf", "download") and tokens[2].startswith("timm/"):
        import timm

        model = tokens[2].removeprefix("timm/").split(".")[0]  # the file timm's default weights of that model are
        assert timm.models.get_pretrained_cfg(model).hf_hub_id == tokens[2], tokens[2]


def check_cloud(tokens: tuple[str, ...], mp: pytest.MonkeyPatch) -> None:
    """A ``lightning`` line parsed by lightning-sdk's own click commands (no callback runs, nothing connects); a
    ``pip install`` line names an extra pyproject.toml declares."""
    if tokens[0] == "pip":
        import tomllib

        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for named in re.findall(r"\[([\w,]+)\]", " ".join(tokens)):
            assert set(named.split(",")) <= set(extras), (
                f"{label(tokens)}: pyproject.toml's extras are {sorted(extras)}"
            )
        return
    if tokens[1:2] == ("login",):
        return  # opens a browser: nothing to parse
    import click
    from requests.exceptions import ConnectionError as Offline  # requests: lightning-sdk's, which it patches here

    def offline(*args, **kwargs):  # lightning_sdk asks PyPI for a newer version as it is imported; it catches this
        raise Offline("offline")

    mp.setattr("requests.get", offline)
    from lightning_sdk.cli.entrypoint import main_cli

    command, ctx, args = main_cli, None, list(tokens[1:])
    try:
        while isinstance(command, click.Group):  # down the groups (job, then run), each parsing its own part
            ctx = command.make_context(command.name or "lightning", args, parent=ctx)
            with warnings.catch_warnings():  # click 9 will leave every unparsed token in ctx.args
                warnings.simplefilter("ignore", DeprecationWarning)
                rest = [*ctx.protected_args, *ctx.args]
            _, command, args = command.resolve_command(ctx, rest)
        command.make_context(command.name, args, parent=ctx)
    except click.UsageError as err:
        raise AssertionError(f"{label(tokens)}: {err}") from None


@pytest.mark.parametrize("tokens", of_kind("cloud"), ids=label)
def test_cloud_line_parses(tokens, plugins):
    with at_root(plugins) as mp:
        check_cloud(tokens, mp)


def test_every_command_shown_is_checked():
    unknown = [f"{page}: {label(tokens)}" for page, tokens in SHOWN if kind(tokens) == "unknown"]
    assert not unknown, "commands no test here checks: " + "; ".join(unknown)
    pages = {page for page, tokens in SHOWN if bridge_part(tokens) is not None}
    assert {"README.md", "docs/babyai.md", "docs/extending.md", "docs/lineage.md", "docs/lineage.ko.md",
            "benchmarks/README.md"} <= pages  # fmt: skip
    assert of_kind("launcher") and of_kind("benchmark") and len(BRIDGE) > 30


@pytest.mark.parametrize("argv", [list(a) for a in BRIDGE if a and a[0] not in ("zoo", "analyze")], ids=label)
def test_bridge_command_parses(argv, plugins):
    with at_root(plugins) as mp:
        check_bridge(argv, mp)


@pytest.mark.parametrize("tokens", of_kind("launcher"), ids=label)
def test_launcher_line_parses(tokens, plugins):
    with at_root(plugins):
        assert launched(tokens) == bridge_part(tokens)  # whose bridge part test_bridge_command_parses checks


@pytest.mark.parametrize("tokens", of_kind("benchmark"), ids=label)
def test_benchmark_command_parses(tokens, plugins):
    with at_root(plugins) as mp:
        check_benchmark(tokens, mp)


@pytest.mark.parametrize("tokens", of_kind("hf", "wandb", "make", "export"), ids=label)
def test_tool_command(tokens):
    check_tool(tokens)


WRONG = [
    (["vla", "eval", "--ckpt", "runs/x/checkpoints/last.ckpt", "--env", "n_obs_steps=3"], "unrecognized arguments"),
    (["vla", "eval", "--ckpt", "runs/x/checkpoints/last.ckpt", "--video", "webm"], "invalid choice"),
    (["vla", "collect", "--world", "reach", "--world-options", "image_side=32", "--out", "x"], "image_side"),
    (["fit", "--config", "configs/vla_resnet.yaml", "--model.init_args.no_such_key", "1"], "no_such_key"),
    (["fit", "--config", "configs/no_such_config.yaml"], "no_such_config"),
    (["run", "lineage", "--preset", "huge"], "huge"),
    (["run", "lineage", "--arms", "ResNet scratch", "AlexNet"], "AlexNet"),
    (["no-such-command"], "no command"),
]


@pytest.mark.parametrize("argv, said", WRONG, ids=[label(a) for a, _ in WRONG])
def test_a_wrong_bridge_command_fails_the_check(argv, said, plugins):
    with at_root(plugins) as mp, pytest.raises(Exception, match=said):
        check_bridge(argv, mp)


def test_a_wrong_launcher_or_benchmark_line_fails_the_check(plugins):
    with at_root(plugins) as mp:
        with pytest.raises(AssertionError):
            launched(("torchrun", "--nproc-per-node", "2", "bridge/cli.py", "fit"))
        with pytest.raises(AssertionError, match="cpux"):
            launched(("fabric", "run", "--accelerator", "cpux", "bridge/__main__.py", "fit"))
        with pytest.raises(AssertionError, match="unrecognized arguments"):
            check_benchmark(("python", "benchmarks/zoo_throughput.py", "--no-such-option"), mp)
        with pytest.raises(AssertionError, match="H999"):
            check_cloud(("lightning", "job", "run", "--machine", "H999", "--command", "python -m bridge fit"), mp)
        with pytest.raises(AssertionError, match="jbo"):
            check_cloud(("lightning", "jbo", "run"), mp)
        with pytest.raises(AssertionError, match="gpus"):
            check_cloud(("pip", "install", "-e", ".[gpus]"), mp)
    with pytest.raises(AssertionError, match="no target"):
        check_tool(("make", "no-such-target"))


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf")  # the digits are built once for every gradient-flow command


# Tiny settings appended to the documented arguments (argparse keeps the last occurrence).
TINY = {
    ("analyze", "gradient-flow"): ["--steps", "1", "--batch-size", "4"],
    ("analyze", "receptive-field"): ["--samples", "1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("argv", [list(a) for a in BRIDGE if a and a[0] in ("zoo", "analyze")], ids=label)
def test_zoo_and_analyze_commands_run(argv, tmp_path, hf_cache, plugins, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(hf_cache))
    monkeypatch.syspath_prepend(str(plugins))  # docs/extending.md summarises its own encoder
    monkeypatch.setenv("BRIDGE_PLUGINS", PLUGINS)
    extra = TINY.get(tuple(argv[:2]), [])
    main(argv + extra + (["--out", str(tmp_path / "out")] if argv[0] == "analyze" and argv[1] != "bottleneck" else []))
    assert capsys.readouterr().out.strip()

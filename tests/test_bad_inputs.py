"""Bad inputs across every command: each is refused with a non-zero exit, one line naming the fix, no
traceback, and nothing written outside the run's own folder. Valid inputs next to them still work.

Commands run in process through ``bridge.cli.main`` (fast); the trained checkpoints they need are tiny. A bad
input must be refused before any training: an optimiser step during one of those cases fails it.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
from functools import partial
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from bridge.cli import main
from bridge.errors import BridgeError
from bridge.runs import mark_folder

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
QUIET = "--trainer.logger false --trainer.enable_progress_bar false --trainer.enable_model_summary false"
LENET = f"--config {CONFIGS}/lenet5_digits.yaml {QUIET} --trainer.limit_val_batches 2 --trainer.limit_test_batches 2"
VLA = (
    f"--config {CONFIGS}/vla_resnet.yaml {QUIET} --model.init_args.policy.image_size 32 "
    """--model.init_args.policy.encoder_kwargs '{"stem": "imagenet", "layers": [1], "widths": [8]}' """
    "--model.init_args.policy.dim 32 --model.init_args.policy.depth 1 --model.init_args.policy.num_heads 2 "
    "--model.init_args.policy.text_dim 16 --model.init_args.policy.text_layers 1 --data.init_args.batch_size 8 "
    """--data.init_args.episodes 8 --data.init_args.world_options '{"image_size": 32, "num_objects": 1}' """
    "--data.init_args.val_fraction 0.25 --trainer.max_time null --trainer.limit_val_batches 2"
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Paths the cases name: two tiny trained checkpoints, and broken files of every kind."""
    d = tmp_path_factory.mktemp("inputs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_CACHE", str(d / "hf"))
        mp.setenv("WANDB_MODE", "offline")
        mp.chdir(d)
        main(["fit", *shlex.split(LENET), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
              "--trainer.default_root_dir", str(d / "lenet")])  # fmt: skip
        main(["fit", *shlex.split(VLA), "--data.init_args.path", str(d / "demos"), "--trainer.max_steps", "2",
              "--trainer.default_root_dir", str(d / "vla")])  # fmt: skip
    paths = {
        "lenet": d / "lenet/checkpoints/last.ckpt", "vla": d / "vla/checkpoints/last.ckpt", "demos": d / "demos",
        "empty": d / "empty.ckpt", "truncated": d / "truncated.ckpt", "pickle": d / "pickle.ckpt",
        "text": d / "notes.ckpt", "pickled_safetensors": d / "weights.safetensors", "nan": d / "nan.ckpt",
        "images": d / "images", "hf": d / "hf", "planted": d / "planted", "exported": d / "exported",
        "workers_preset": d / "workers.yaml",
    }  # fmt: skip
    paths["workers_preset"].write_text("num_workers: -1\n")
    paths["empty"].write_bytes(b"")
    data = paths["lenet"].read_bytes()
    paths["truncated"].write_bytes(data[: len(data) // 2])
    torch.save({"state_dict": {}, "hook": argparse.Namespace(x=1)}, paths["pickle"])  # an object: not weights
    (paths["planted"] / "checkpoints").mkdir(parents=True)  # a run folder whose last.ckpt was replaced by a pickle
    mark_folder(paths["planted"], "run")
    (paths["planted"] / "checkpoints" / "last.ckpt").write_bytes(paths["pickle"].read_bytes())
    main(["vla", "export", "--ckpt", str(paths["vla"]), "--out", str(paths["exported"])])
    paths["text"].write_text("not a checkpoint\n")
    torch.save({"weight": torch.zeros(2)}, paths["pickled_safetensors"])
    checkpoint = torch.load(paths["vla"], weights_only=True)
    checkpoint["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                for k, v in checkpoint["state_dict"].items()}  # fmt: skip
    torch.save(checkpoint, paths["nan"])
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (paths["images"] / label).mkdir(parents=True)
        for i in range(4):
            PIL.Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(
                paths["images"] / label / f"{i}.png"
            )
    (paths["images"] / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths.update(_policy_folders(d, paths))
    return {k: str(v) for k, v in paths.items()}


def _policy_folders(d: Path, paths: dict[str, Path]) -> dict[str, Path]:
    """The tiny VLA checkpoint saved as a policy folder, copies of it with one fault each, a BabyAI policy folder
    and a text encoder folder whose weights are a pickle."""
    import json
    import shutil

    from transformers import BertConfig

    from bridge.vla.policy.configuration import PolicyConfig
    from bridge.vla.policy.language import train_tokenizer
    from bridge.vla.policy.loading import load_policy
    from bridge.vla.policy.modeling import Policy

    good = d / "policy"
    load_policy(paths["vla"]).save_pretrained(good)
    config = json.loads((good / "config.json").read_text())
    faults = {
        "no_config": lambda f: (f / "config.json").unlink(),
        "empty_config": lambda f: (f / "config.json").write_text(""),
        "json_broken": lambda f: (f / "config.json").write_text('{"world": "reach",'),
        "list_config": lambda f: (f / "config.json").write_text("[1, 2]"),
        "unknown_key": lambda f: (f / "config.json").write_text(json.dumps({**config, "widht": 3})),
        "wrong_type": lambda f: (f / "config.json").write_text(json.dumps({**config, "dim": "wide"})),
        "tokenizer_cut": lambda f: (f / "tokenizer.json").write_text((f / "tokenizer.json").read_text()[:200]),
        "no_text_encoder": lambda f: (f / "config.json").write_text(
            json.dumps({**config, "text_encoder": str(d / "no" / "text_encoder")})
        ),
    }
    out = {"policy": good}
    for name, fault in faults.items():
        out[f"policy_{name}"] = d / f"policy_{name}"
        shutil.copytree(good, out[f"policy_{name}"])
        fault(out[f"policy_{name}"])
    torch.manual_seed(0)
    out["babyai_policy"] = d / "babyai_policy"
    Policy(PolicyConfig(world="babyai:GoToRedBall", encoder_kwargs={"layers": [1], "widths": [8]}, text_dim=16,
                        text_layers=1, dim=32, depth=1, num_heads=2)).save_pretrained(out["babyai_policy"])  # fmt: skip
    out["pickled_text_encoder"] = d / "text_encoder"
    tokenizer = train_tokenizer(["reach the red ball"])
    tokenizer.save_pretrained(out["pickled_text_encoder"])
    BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32).save_pretrained(out["pickled_text_encoder"])  # fmt: skip
    torch.save({"hook": argparse.Namespace(x=1)}, out["pickled_text_encoder"] / "pytorch_model.bin")
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch, inputs) -> Path:
    """A working directory holding a file and another run's folder, which no command may touch."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_CACHE", inputs["hf"])
    monkeypatch.setenv("WANDB_MODE", "offline")
    (tmp_path / "afile").write_text("keep me\n")
    (tmp_path / "runs" / "other").mkdir(parents=True)
    (tmp_path / "runs" / "other" / "keep.txt").write_text("keep me\n")
    return tmp_path


RUN_FOLDERS = ("runs/lenet5_digits", "runs/resnet20_shapes", "runs/vla_resnet")  # the configs' own run folders


def tree(root: Path) -> dict[str, tuple[int, int] | str]:
    """Every file (size, mtime) and folder under ``root``, but those in a run's own folder."""
    return {
        str(p.relative_to(root)): "folder" if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if not str(p.relative_to(root)).startswith(RUN_FOLDERS)
    }


def command(argv: str, inputs: dict[str, str]) -> list[str]:
    """The argv of a case, its ``{name}`` placeholders replaced by the paths in ``inputs``."""
    for name, path in inputs.items():
        argv = argv.replace("{" + name + "}", path)
    return shlex.split(argv)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` -> (exit status, everything printed). An exception other than SystemExit is a traceback."""
    try:
        main(argv)
        code: object = 0
    except SystemExit as exit_:
        code = exit_.code
    except BaseException as err:  # noqa: BLE001 - anything else reaches the user as a traceback
        out = capsys.readouterr()
        pytest.fail(f"Traceback: {type(err).__name__}: {err}\n{out.out}{out.err}"[-3000:])
    out = capsys.readouterr()
    text = out.out + out.err + (code if isinstance(code, str) else "")
    return (1 if isinstance(code, str) else code or 0), text


# (argv, a regex the message must match: it names the fix). {name} is a path from the ``inputs`` fixture.
BAD = {
    # zoo
    "zoo-summary-depth-negative": ("zoo summary vgg16 --depth -3", r"--depth.*1 or more.*block"),
    "zoo-summary-depth-text": ("zoo summary vgg16 --depth deep", r"--depth.*1 or more.*block"),
    "zoo-summary-unknown-model": ("zoo summary resnet21", r"resnet20"),
    "zoo-summary-input-zero": ("zoo summary resnet20 --input-size 3 0 32", r"--input-size.*1 or more"),
    "zoo-summary-input-negative": ("zoo summary resnet20 --input-size 3 -32 32", r"--input-size.*1 or more"),
    "zoo-list-no-match": ("zoo list nothing*", r"zoo list"),
    # analyze
    "rf-samples-zero": ("analyze receptive-field --samples 0", r"--samples.*1 or more"),
    "rf-samples-negative": ("analyze receptive-field --samples -2", r"--samples.*1 or more"),
    "rf-max-layers-zero": ("analyze receptive-field --max-layers 0", r"--max-layers.*1 or more"),
    "rf-channels-zero": ("analyze receptive-field --channels 0", r"--channels.*1 or more"),
    "rf-input-size-zero": ("analyze receptive-field --input-size 3 0 0", r"--input-size.*1 or more"),
    "rf-unknown-layer": ("analyze receptive-field --model resnet20 --layer layer9", r"zoo summary"),
    "rf-unknown-model": ("analyze receptive-field --model vgg17", r"vgg1"),
    "rf-out-is-a-file": ("analyze receptive-field --out afile", r"afile.*not a folder.*--out"),
    "gf-steps-negative": ("analyze gradient-flow resnet20 --steps -3", r"--steps.*1 or more"),
    "gf-lr-nan": ("analyze gradient-flow resnet20 --lr nan", r"--lr.*finite number"),
    "gf-lr-inf": ("analyze gradient-flow resnet20 --lr inf", r"--lr.*finite number"),
    "gf-lr-negative": ("analyze gradient-flow resnet20 --lr -0.1", r"--lr.*above 0"),
    "gf-batch-size-zero": ("analyze gradient-flow resnet20 --batch-size 0", r"--batch-size.*1 or more"),
    "gf-out-is-a-file": ("analyze gradient-flow resnet20 --steps 1 --out afile", r"afile.*not a folder.*--out"),
    "gf-unknown-source": ("analyze gradient-flow resnet20 --data nowhere:x", r"digits, shapes"),
    "gf-corrupt-image": ("analyze gradient-flow resnet20 --steps 1 --data imagefolder:{images}", r"broken\.png"),
    "gf-missing-folder": ("analyze gradient-flow resnet20 --data imagefolder:no/such", r"not a directory"),
    "bottleneck-width-zero": ("analyze bottleneck --width 0", r"--width.*1 or more"),
    "bottleneck-size-negative": ("analyze bottleneck --size -1", r"--size.*1 or more"),
    # fit / validate / test / predict
    "fit-devices-8": (f"fit {LENET} --trainer.devices 8", r"--trainer.devices [12] or fewer"),
    "fit-image-size-zero": (f"fit {LENET} --data.init_args.image_size 0", r"image_size must be 1 or more"),
    "fit-image-size-negative": (f"fit {LENET} --data.init_args.image_size -4", r"image_size must be 1 or more"),
    "fit-batch-size-zero": (f"fit {LENET} --data.init_args.batch_size 0", r"batch_size.*1 or more"),
    "fit-num-classes-zero": (f"fit {LENET} --model.init_args.num_classes 0", r"num_classes must be 2 or more"),
    "fit-corrupt-image": (f"fit {LENET} --data.init_args.source imagefolder:{{images}}", r"broken\.png"),
    "fit-val-fraction": (
        f"fit {LENET} --data.init_args.source imagefolder:{{images}} --data.init_args.val_fraction 2",
        r"val_fraction must be in",
    ),  # fmt: skip
    "test-ckpt-missing": (f"test {LENET} --ckpt_path no/such.ckpt", r"does not exist"),
    "test-ckpt-empty": (f"test {LENET} --ckpt_path {{empty}}", r"empty.*save or fetch it again"),
    "test-ckpt-truncated": (f"test {LENET} --ckpt_path {{truncated}}", r"truncated.*save or fetch it again"),
    "test-ckpt-pickled": (f"test {LENET} --ckpt_path {{pickle}}", r"refusing.*safetensors"),
    "test-ckpt-not-a-checkpoint": (f"test {LENET} --ckpt_path {{text}}", r"not a weights file"),
    "test-lenet-ckpt-resnet-config": (
        f"test --config {CONFIGS}/resnet20_shapes.yaml {QUIET} --ckpt_path {{lenet}}",
        r"lenet5.*resnet20.*--config",
    ),
    "test-vla-ckpt-classifier-config": (
        f"test {LENET} --ckpt_path {{vla}}",
        r"VLAPolicy checkpoint.*an ImageClassifier",
    ),
    "validate-classifier-ckpt-vla-config": (
        f"validate {VLA} --data.init_args.path {{demos}} --ckpt_path {{lenet}}",
        r"ImageClassifier checkpoint of lenet5.*VLA",
    ),
    "validate-nan-weights": (
        f"validate {VLA} --data.init_args.path {{demos}} --ckpt_path {{nan}}",
        r"NaN or inf.*earlier checkpoint",
    ),
    "predict-ckpt-empty": (f"predict {LENET} --ckpt_path {{empty}}", r"empty"),
    "fit-n-obs-steps-zero": (f"fit {VLA} --model.init_args.policy.n_obs_steps 0", r"n_obs_steps must be 1 or more"),
    "fit-history-not-in-demos": (
        f"fit {VLA} --data.init_args.path {{demos}} --model.init_args.policy.n_obs_steps 2",
        r"serves the last 1 frames.*policy.n_obs_steps: 1",
    ),
    "fit-image-tokens-unknown": (f"fit {VLA} --model.init_args.policy.image_tokens patches", r"image_tokens.*pooled"),
    "fit-head-not-for-world": (f"fit {VLA} --model.init_args.policy.head categorical", r"set head: bins or continuous"),
    # vla
    "collect-episodes-zero": ("vla collect --episodes 0 --out runs/demos", r"--episodes.*1 or more"),
    "collect-episodes-negative": ("vla collect --episodes -5 --out runs/demos", r"--episodes.*1 or more"),
    "collect-num-envs-zero": ("vla collect --episodes 2 --num-envs 0 --out runs/demos", r"--num-envs.*1 or more"),
    "collect-workers-zero": ("vla collect --episodes 2 --workers 0 --out runs/demos", r"--workers.*1 or more"),
    "collect-noise-nan": ("vla collect --episodes 2 --noise nan --out runs/demos", r"--noise.*finite number"),
    "collect-noise-negative": ("vla collect --episodes 2 --noise -1 --out runs/demos", r"--noise.*0 or more"),
    "collect-world-options-not-a-pair": (
        "vla collect --episodes 2 --world-options image_size --out runs/demos",
        r"--world-options.*KEY=VALUE",
    ),
    "collect-world-options-image-size-zero": (
        "vla collect --episodes 2 --world-options image_size=0 --out runs/demos",
        r"image_size",
    ),
    "collect-world-options-a-fraction-of-frames": (
        "vla collect --world babyai:GoToRedBall --world-options n_obs_steps=2.5 --out runs/demos",
        r"n_obs_steps=2.5: n_obs_steps takes a whole number",
    ),
    "collect-world-options-true-for-a-number": (
        "vla collect --world babyai:GoToRedBall --world-options n_obs_steps=true --out runs/demos",
        r"n_obs_steps=true: n_obs_steps takes a whole number",
    ),
    "collect-noise-too-high-for-the-expert": (
        "vla collect --world babyai:GoToRedBall --noise 0.97 --episodes 20 --out runs/demos",
        r"expert failed \d+ of \d+ episodes.*noise 0.97.*lower --noise",
    ),
    "collect-a-level-the-bot-cannot-solve": (
        "vla collect --world babyai:KeyInBox --episodes 3 --out runs/demos",
        r"expert failed \d+ of \d+ episodes.*cannot solve.*another level",
    ),
    "collect-unknown-world": ("vla collect --world nowhere --episodes 2 --out runs/demos", r"reach"),
    "collect-unknown-babyai-level": (
        "vla collect --world babyai:GoToNowhere --episodes 2 --out runs/demos",
        r"no BabyAI level 'GoToNowhere'.*babyai:<Level>",
    ),
    "collect-babyai-noise": (
        "vla collect --world babyai:GoToRedBall --noise 1.5 --episodes 2 --out runs/demos",
        r"chance of a random move per step, in \[0, 1\); got 1.5",
    ),
    "eval-ckpt-missing": ("vla eval --ckpt no/such.ckpt --no-wandb", r"does not exist"),
    "eval-ckpt-empty": ("vla eval --ckpt {empty} --no-wandb", r"empty"),
    "eval-classifier-ckpt": ("vla eval --ckpt {lenet} --no-wandb", r"ImageClassifier checkpoint of lenet5"),
    "eval-nan-weights": ("vla eval --ckpt {nan} --no-wandb --video none", r"NaN"),
    "eval-episodes-zero": ("vla eval --ckpt {vla} --episodes 0 --no-wandb", r"--episodes.*1 or more"),
    "eval-seeds-zero": ("vla eval --ckpt {vla} --seeds 0 --no-wandb", r"--seeds.*1 or more"),
    "eval-num-envs-zero": ("vla eval --ckpt {vla} --num-envs 0 --no-wandb", r"--num-envs.*1 or more"),
    "eval-scenes-unknown": (
        "vla eval --ckpt {vla} --scenes test --no-wandb",
        r"--scenes: invalid choice: 'test' \(choose from 'evaluation', 'validation'\)",
    ),
    "eval-record-negative": ("vla eval --ckpt {vla} --record -1 --no-wandb", r"--record.*0 or more"),
    "eval-out-is-a-file": ("vla eval --ckpt {vla} --out afile --no-wandb", r"afile.*not a folder.*--out"),
    "export-ckpt-pickled": ("vla export --ckpt {pickle} --out runs/policy", r"refusing"),
    "export-classifier-ckpt": ("vla export --ckpt {lenet} --out runs/policy", r"ImageClassifier checkpoint of lenet5"),
    # a command writes only into a folder it made, or one it marked as its own kind
    "eval-out-a-folder-of-the-users": (
        "vla eval --ckpt {vla} --out runs/other --no-wandb",
        r"runs/other.*files bridge did not write.*another",
    ),
    "compare-out-a-file-of-the-users": (
        "vla compare --arm A a.json --arm B b.json --out afile",
        r"afile.*not a comparison.*another --out",
    ),
    "fit-name-a-folder-of-the-users": (f"fit {LENET} --name other", r"runs/other.*did not write.*--name"),
    "fit-root-dir-a-folder-of-the-users": (
        f"fit {LENET} --trainer.default_root_dir runs/other",
        r"runs/other.*did not write.*default_root_dir",
    ),
    "fit-resume-a-planted-pickle": (
        f"fit {LENET} --trainer.default_root_dir {{planted}} --ckpt_path last",
        r"last.ckpt.*(refus|not)",
    ),
    "export-onto-an-earlier-export": ("vla export --ckpt {vla} --out {exported}", r"--overwrite"),
    "collect-out-under-a-file": ("vla collect --episodes 2 --out afile/demos", r"under afile, which is a file.*--out"),
    "eval-out-under-a-file": ("vla eval --ckpt {vla} --out afile/eval --no-wandb", r"under afile.*--out"),
    # policy folders, worlds and weights files the VLA side is handed
    "eval-policy-no-config": (
        "vla eval --ckpt {policy_no_config} --no-wandb",
        r"without config\.json.*save_pretrained",
    ),
    "eval-policy-empty-config": ("vla eval --ckpt {policy_empty_config} --no-wandb", r"config\.json is empty.*again"),
    "eval-policy-config-not-json": (
        "vla eval --ckpt {policy_json_broken} --no-wandb",
        r"config\.json is not JSON.*save the policy again",
    ),
    "eval-policy-config-a-list": (
        "vla eval --ckpt {policy_list_config} --no-wandb",
        r"holds a list, not a mapping of policy settings",
    ),
    "eval-policy-config-unknown-key": (
        "vla eval --ckpt {policy_unknown_key} --no-wandb",
        r"unknown policy settings: widht.*save the policy again",
    ),
    "eval-policy-config-wrong-type": (
        "vla eval --ckpt {policy_wrong_type} --no-wandb",
        r"dim must be an integer, got 'wide'.*save the policy again",
    ),
    "eval-policy-tokenizer-truncated": (
        "vla eval --ckpt {policy_tokenizer_cut} --no-wandb",
        r"tokenizer\.json is not valid JSON.*truncated.*save_pre",
    ),
    "eval-policy-text-encoder-missing": (
        "vla eval --ckpt {policy_no_text_encoder} --no-wandb",
        r"text_encoder folder \S+ does not exist",
    ),
    "eval-reach-policy-in-babyai": (
        "vla eval --ckpt {vla} --world babyai:GoToRedBall --no-wandb --video none",
        r"action space \(a 2-D continuous box, trained in reach\).*7 discrete actions.*world it was trained in",
    ),
    "eval-babyai-policy-in-reach": (
        "vla eval --ckpt {babyai_policy} --world reach --no-wandb --video none",
        r"action space \(7 discrete actions.*2-D continuous box.*train a policy for reach",
    ),
    "run-lineage-timm-weights-text": ("run lineage --timm-weights {text}", r"--timm-weights.*not a weights file"),
    "run-lineage-timm-weights-pickle": ("run lineage --timm-weights {pickle}", r"--timm-weights.*refusing.*safetens"),
    # recipes
    "run-unknown-recipe": ("run lineages", r"lineage"),
    "run-degradation-epochs-zero": ("run degradation --epochs 0", r"PositiveInt"),
    "run-shortcuts-epochs-zero": ("run shortcuts --epochs 0", r"PositiveInt"),
    "run-shortcuts-unknown-model": ("run shortcuts --models resnet21 --epochs 1", r"resnet20"),
    "run-lineage-steps-zero": ("run lineage --steps 0", r"PositiveInt"),
    "run-lineage-image-size-zero": ("run lineage --image-size 0", r"image.size"),
    "run-lineage-unknown-world": ("run lineage --world nowhere", r"--world: no world named 'nowhere'"),
    # lineage: flags that would have no effect, names timm lacks, frame sizes a world fixes, --out under a file
    "run-lineage-image-size-babyai": (
        "run lineage --world babyai:GoToRedBall --image-size 32",
        r"--image-size: babyai:GoToRedBall renders its own 56x56 frames.*leave it out",
    ),
    "run-lineage-timm-weights-no-timm-arm": (
        'run lineage --arms "ResNet scratch" --timm-weights {lenet}',
        r"--timm-weights has no effect.*add 'mobilenetv3_small_100' to --arms",
    ),
    "run-lineage-timm-no-timm-arm": (
        'run lineage --arms "ResNet scratch" --timm resnet18',
        r"--timm has no effect.*add 'resnet18' to --arms",
    ),
    "run-lineage-timm-typo": (
        'run lineage --arms "ResNet scratch" --timm timm:resnet1',
        r"no model 'resnet1'.*resnet1",
    ),
    "run-lineage-out-under-a-file": ("run lineage --out afile/x", r"afile/x is under afile, which is a file.*--out"),
    "run-lineage-preset-num-workers": (
        "run lineage --preset {workers_preset}",
        r"num_workers must be 0 or more, got -1; set num_workers in the file",
    ),
    "run-degradation-unknown-label": ("run degradation --epochs 1 --only ResNet-21", r"ResNet-20"),
    "run-degradation-out-is-a-file": (
        "run degradation --epochs 1 --only ResNet-20 --out afile",
        r"afile.*(not a folder|is a file)",
    ),
    "run-shortcuts-out-is-a-file": (
        "run shortcuts --epochs 1 --models resnet20 --out afile",
        r"afile.*(not a folder|is a file)",
    ),
}


class TrainingStarted(BaseException):
    """A bad input reached an optimiser step: it must be refused before any training."""


@pytest.fixture
def no_training():
    def refuse(optimizer, args, kwargs):
        raise TrainingStarted(f"{type(optimizer).__name__}.step() ran: the bad input was not refused up front")

    handle = register_optimizer_step_pre_hook(refuse)
    yield
    handle.remove()


@pytest.mark.parametrize("argv, fix", list(BAD.values()), ids=list(BAD))
def test_bad_input_is_refused_with_the_fix_and_writes_nothing(argv, fix, inputs, workdir, capsys, no_training):
    before = tree(workdir)
    code, text = run_cli(command(argv, inputs), capsys)
    assert code != 0, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    assert re.search(fix, text, re.S), text[-2000:]
    assert tree(workdir) == before, "files changed outside the run's folder"


def test_ctrl_c_during_collect_exits_130_with_one_line_and_nothing_written(workdir, capsys, monkeypatch):
    import bridge.vla.demos

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bridge.vla.demos, "collect_demos", interrupted)
    before = tree(workdir)
    code, text = run_cli(["vla", "collect", "--episodes", "2", "--out", "runs/demos"], capsys)
    assert code == 130 and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1 and "again" in text, text
    assert tree(workdir) == before


def test_ctrl_c_during_fit_says_how_to_resume(inputs, workdir, capsys, monkeypatch):
    import signal

    from bridge.lit.classifier import ImageClassifier

    def interrupted(self, batch, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(ImageClassifier, "training_step", interrupted)
    handler = signal.getsignal(signal.SIGINT)
    try:
        code, text = run_cli(shlex.split(f"fit {LENET} --trainer.max_epochs 1"), capsys)
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl-C while it shuts down, and leaves it so
    assert code != 0 and "Traceback" not in text
    assert "interrupted (Ctrl-C): no checkpoint was written yet; run the same command again" in text, text[-2000:]


def _policy_inputs(images=None, state_fill=0.0):
    from bridge.vla.policy.configuration import PolicyConfig
    from bridge.vla.policy.modeling import Policy

    torch.manual_seed(0)
    policy = Policy(PolicyConfig(image_size=16, encoder_kwargs={"layers": [1], "widths": [8]}, text_dim=16,
                                 text_layers=1, dim=32, depth=1, num_heads=2)).eval()  # fmt: skip
    frames = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8) if images is None else images
    states = torch.full((2, policy.config.state_dim), state_fill)
    return lambda: policy.predict(frames, states, ["reach the red ball"] * 2)


def _weights(path_key: str):
    def call(inputs):
        from bridge.models import create_model, import_weights

        return import_weights(create_model("lenet5"), inputs[path_key])

    return call


def _empty_safetensors(inputs):
    from bridge.models import create_model, import_weights

    path = Path(inputs["hf"]).parent / "empty.safetensors"
    path.write_bytes(b"")
    return import_weights(create_model("lenet5"), path)


def _frames(kind):
    def call(inputs):
        frames = torch.rand(2, 16, 16, 3) if kind == "float" else torch.full((2, 16, 16, 3), float("nan"))
        return _policy_inputs(images=frames)()

    return call


def _create(name, **kwargs):
    def call(inputs):
        from bridge.models import create_model

        return create_model(name, **{k: command(v, inputs)[0] if isinstance(v, str) else v for k, v in kwargs.items()})

    return call


def _analysis(module: str, function: str, inputs: dict, **kwargs):
    """A bridge.analysis function on LeNet-5 with one bad keyword."""
    import importlib

    from bridge.models import create_model

    call = getattr(importlib.import_module(f"bridge.analysis.{module}"), function)
    model = create_model("lenet5")
    if function == "gradient_flow":
        return call(model, [(torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long))], **{"steps": 1, **kwargs})
    if function == "gradient_map":
        return call(model, "features.conv1", (1, 32, 32), **kwargs)
    if function == "summarize":
        return call(model, (1, 32, 32), **kwargs)
    return call(**kwargs)


def _load_nan_policy(inputs):
    from bridge.vla.policy.loading import load_policy

    return load_policy(inputs["nan"])


def _tiny_policy():
    from bridge.vla.policy.configuration import PolicyConfig
    from bridge.vla.policy.modeling import Policy

    torch.manual_seed(0)
    return Policy(PolicyConfig(image_size=16, encoder_kwargs={"layers": [1], "widths": [8]}, text_dim=16,
                               text_layers=1, dim=32, depth=1, num_heads=2)).eval()  # fmt: skip


def _predict(batch=2, tasks=None, states="ok", dtype=torch.uint8, agent=False):
    """Policy.predict (or its as_agent) on a tiny Reach policy, with one input wrong."""

    def call(inputs):
        policy = _tiny_policy()
        frames = torch.randint(0, 256, (batch, 16, 16, 3)).to(dtype)
        given = torch.zeros(batch, policy.config.state_dim) if isinstance(states, str) else states
        instructions = ["reach the red ball"] * batch if tasks is None else tasks
        if agent:
            obs = {"image": frames.numpy(), "task": instructions}
            return policy.as_agent()(obs if given is None else {**obs, "state": given.numpy()}, {})
        return policy.predict(frames, given, instructions)

    return call


def _from_pretrained(key: str, suffix: str = "", offline: bool = False):
    def call(inputs):
        from bridge.vla.policy.modeling import Policy

        with pytest.MonkeyPatch.context() as mp:
            if offline:
                mp.setenv("HF_HUB_OFFLINE", "1")
            return Policy.from_pretrained(inputs[key] + suffix)

    return call


def _save_onto_a_file(inputs):
    path = Path(inputs["hf"]).parent / "a_file"
    path.write_text("keep me\n")
    return _tiny_policy().save_pretrained(path)


def _pickled_text_encoder(inputs):
    from bridge.vla.policy.configuration import PolicyConfig
    from bridge.vla.policy.modeling import Policy

    return Policy(PolicyConfig(image_size=16, encoder_kwargs={"layers": [1], "widths": [8]}, dim=32, depth=1,
                               num_heads=2, text_encoder=inputs["pickled_text_encoder"]))  # fmt: skip


API = {
    "vit-patch-size-zero": (_create("vit_tiny_patch16_224", patch_size=0), r"patch_size must be a positive integer"),
    "vit-img-size-negative": (_create("vit_tiny_patch16_224", img_size=-16), r"img_size must be a positive"),
    "resnet-width-zero": (_create("resnet20", widths=(16, 0, 64)), r"widths must be a positive integer"),
    "lenet-in-chans-zero": (_create("lenet5", in_chans=0), r"in_chans must be a positive integer"),
    "gradient-flow-steps-zero": (partial(_analysis, "gradient_flow", "gradient_flow", steps=0), r"steps must be"),
    "gradient-flow-lr-nan": (partial(_analysis, "gradient_flow", "gradient_flow", lr=math.nan), r"lr must be a finite"),
    "gradient-map-samples-zero": (partial(_analysis, "receptive_field", "gradient_map", samples=0), r"samples must"),
    "compare-stacks-zero": (partial(_analysis, "receptive_field", "compare_stacks", max_layers=0), r"max_layers must"),
    "summarize-depth-negative": (partial(_analysis, "summary", "summarize", depth=-3), r"depth must be 1 or more"),
    "import-weights-empty-safetensors": (_empty_safetensors, r"empty"),
    "import-weights-pickle-named-safetensors": (_weights("pickled_safetensors"), r"named \.safetensors.*\.pth"),
    "import-weights-truncated": (_weights("truncated"), r"truncated"),
    "policy-float-frames": (_frames("float"), r"uint8 values 0-255.*\* 255"),
    "policy-nan-frames": (_frames("nan"), r"uint8 values 0-255"),
    "policy-nan-states": (lambda inputs: _policy_inputs(state_fill=float("nan"))(), r"states hold NaN or inf"),
    "policy-inf-states": (lambda inputs: _policy_inputs(state_fill=float("inf"))(), r"states hold NaN or inf"),
    "policy-nan-weights": (_load_nan_policy, r"NaN or inf.*earlier checkpoint"),
    # the policy's Python API: folders, weights files and inputs to predict / as_agent
    "from-pretrained-a-file": (_from_pretrained("policy", "/config.json"), r"is a file, not a policy folder"),
    "from-pretrained-missing-offline": (
        _from_pretrained("policy", "_missing", offline=True),
        r"neither a local folder nor a policy on the Hugging Face hub.*reached.*HF_HUB_OFFLINE",
    ),
    "from-pretrained-no-config": (_from_pretrained("policy_no_config"), r"without config\.json"),
    "from-pretrained-config-a-list": (_from_pretrained("policy_list_config"), r"holds a list, not a mapping"),
    "from-pretrained-wrong-type": (_from_pretrained("policy_wrong_type"), r"dim must be an integer, got 'wide'"),
    "from-pretrained-tokenizer-truncated": (_from_pretrained("policy_tokenizer_cut"), r"tokenizer\.json.*truncated"),
    "save-pretrained-onto-a-file": (_save_onto_a_file, r"a_file exists and is not a folder.*another folder"),
    "timm-pretrained-file-text": (
        _create("timm:test_resnet", pretrained_file="{text}"),
        r"not a weights file.*safetensors or torch\.save",
    ),
    "timm-pretrained-file-pickle": (_create("timm:test_resnet", pretrained_file="{pickle}"), r"refusing.*safetensors"),
    "text-encoder-folder-pickle": (_pickled_text_encoder, r"not loadable weights.*model\.safetensors"),
    "predict-batch-of-0": (_predict(batch=0, tasks=[]), r"batch of 0 frames.*at least one"),
    "predict-instruction-none": (_predict(batch=1, tasks=[None]), r"instructions must be strings, got None"),
    "predict-instruction-int": (_predict(batch=1, tasks=[42]), r"instructions must be strings, got 42"),
    "predict-bare-str-for-a-batch": (_predict(tasks="reach the red ball"), r"one instruction \(a str\) for 2 frames"),
    "predict-states-batch": (_predict(states=torch.zeros(1, 2)), r"states \(B, state_dim\) = \(2, 2\).*got \(1, 2\)"),
    "predict-states-width": (_predict(states=torch.zeros(2, 5)), r"states \(B, state_dim\) = \(2, 2\).*got \(2, 5\)"),
    "predict-states-rank": (_predict(states=torch.zeros(2)), r"states \(B, state_dim\) = \(2, 2\).*got \(2,\)"),
    "predict-states-missing": (_predict(states=None), r"takes agent states.*got none.*observation\.state"),
    "predict-int64-frames": (_predict(dtype=torch.int64), r"int64.*integer frames of values 0-255.*\.to\(torch\.uint8"),
    "agent-states-missing": (_predict(states=None, agent=True), r"takes agent states.*got none"),
    "agent-bare-str-for-a-batch": (_predict(tasks="reach it", agent=True), r"one instruction \(a str\) for 2 frames"),
}


@pytest.mark.parametrize("call, fix", list(API.values()), ids=list(API))
def test_bad_input_to_the_python_api_raises_a_bridge_error_with_the_fix(call, fix, inputs):
    with pytest.raises(BridgeError, match=re.compile(fix, re.S)):
        call(inputs)


GOOD = {
    "zoo-summary-block": ("zoo summary resnet20 --depth block", "total", None),
    "zoo-summary-input-size": ("zoo summary resnet20 --input-size 3 16 16", "total", None),
    "bottleneck": ("analyze bottleneck --width 8 --size 8", "fewer weights", None),
    "receptive-field": (
        "analyze receptive-field --model resnet20 --layer layer1 --input-size 3 32 32 --samples 1 --max-layers 2 "
        "--channels 8 --out runs/rf",
        "measured",
        "runs/rf/receptive_field.md",
    ),  # fmt: skip
    "gradient-flow": (
        "analyze gradient-flow resnet20 --steps 1 --batch-size 8 --out runs/gf",
        "first/last",
        "runs/gf/gradient_flow.md",
    ),  # fmt: skip
    "test-lenet": (f"test {LENET} --ckpt_path {{lenet}}", "test/acc", None),
    "predict-lenet": (
        f"predict {LENET} --trainer.limit_predict_batches 2 --ckpt_path {{lenet}} --name pred",
        "runs/pred/predictions.csv",
        "runs/pred/predictions.csv",
    ),  # fmt: skip
    "validate-vla-by-path": (f"validate {VLA} --data.init_args.path {{demos}} --ckpt_path {{vla}}", "val/loss", None),
    "resume-vla-by-path": (
        f"fit {VLA} --data.init_args.path {{demos}} --ckpt_path {{vla}} --trainer.max_steps 3 --name resumed",
        "",
        "runs/resumed/checkpoints/last.ckpt",
    ),
    "export-vla": ("vla export --ckpt {vla} --out runs/policy", "runs/policy", "runs/policy/config.json"),
}


@pytest.mark.parametrize("argv, says, writes", list(GOOD.values()), ids=list(GOOD))
def test_valid_inputs_still_work(argv, says, writes, inputs, workdir, capsys):
    code, text = run_cli(command(argv, inputs), capsys)
    assert code == 0, text[-3000:]
    assert says in text, text[-2000:]
    if writes:
        assert (workdir / writes).is_file()
    assert (workdir / "afile").read_text() == "keep me\n" and (workdir / "runs/other/keep.txt").is_file()


def test_predictions_are_one_row_per_image(inputs, workdir, capsys):
    code, text = run_cli(shlex.split(f"predict {LENET} --trainer.limit_predict_batches 2 --ckpt_path {inputs['lenet']}"
                                     " --name p --data.init_args.batch_size 5"), capsys)  # fmt: skip
    assert code == 0, text[-3000:]
    rows = (workdir / "runs/p/predictions.csv").read_text().splitlines()
    assert rows[0] == "index,prediction,confidence" and len(rows) == 11


def test_export_replaces_only_its_own_folder_and_eval_reruns_into_its_own(inputs, workdir, capsys):
    argv = ["vla", "export", "--ckpt", inputs["vla"], "--out", "runs/policy"]
    assert run_cli(argv, capsys)[0] == 0
    (workdir / "runs/policy/config.json").write_text("{}")  # to tell the new export from the old one
    code, text = run_cli([*argv, "--overwrite"], capsys)
    assert code == 0, text[-2000:]
    assert "dim" in (workdir / "runs/policy/config.json").read_text()
    assert not list((workdir / "runs").glob(".policy*")), "a temporary folder was left behind"
    evaluation = ["vla", "eval", "--ckpt", "runs/policy", "--episodes", "2", "--record", "0", "--no-wandb"]
    for _ in range(2):  # the second run replaces the first's results: the folder is an evaluation's
        code, text = run_cli([*evaluation, "--out", "runs/eval"], capsys)
        assert code == 0, text[-2000:]
    assert (workdir / "runs/eval/results.json").is_file()


def test_a_bare_instruction_serves_a_batch_of_one():
    policy = _tiny_policy()
    frames, states = torch.randint(0, 256, (1, 16, 16, 3), dtype=torch.uint8), torch.zeros(1, 2)
    assert torch.equal(policy.predict(frames, states, "reach the red ball"),
                       policy.predict(frames, states, ["reach the red ball"]))  # fmt: skip

"""A training step of a BabyAI policy in float32 against bfloat16 autocast on the CPU, in one process.

``--trainer.precision bf16-mixed`` makes Lightning run the forward pass under ``torch.autocast("cpu",
torch.bfloat16)`` and keep the weights and the optimiser in float32. Whether that pays depends on the CPU:
with AMX (Intel Xeon since Sapphire Rapids) bfloat16 matrix products run on the tile unit; without it they
may run slower than float32. Both sides train the same policy (configs/vla_babyai_gotolocal.yaml's, built
from one seed, its encoder swapped if asked) on the same demos with the same threads, and rounds alternate
between them so that the machine's load falls on both alike. The report gives the median milliseconds per
step and the ratio float32 / bfloat16 with the interquartile range of the per-round ratios: above 1, the
same minutes hold that many times the steps.

Run it with::

    python benchmarks/cpu_bf16.py                      # the config's FiLM-CNN; collects 1,000 GoToLocal demos
    python benchmarks/cpu_bf16.py --demos runs/demos/babyai_gotolocal_20000_k3 --threads 1 \\
        --encoder resnet20 --encoder-kwargs '{stem: imagenet, layers: [3, 3], widths: [16, 32]}'
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
import yaml
from frame_sharing import CONFIG, demos_path, endless, run, time_steps, timing_parser

from bridge.models import model_info
from bridge.vla.demos import DemoDataModule, load_demos
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.policy.modeling import Policy

SIDES = {"float32": False, "bf16 autocast": True}


def yaml_mapping(text: str) -> dict:
    """``--encoder-kwargs``: a YAML mapping, checked as it is parsed."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a YAML mapping such as '{{widths: [16, 32]}}', got {text!r}")
    return value


def main() -> None:
    parser = timing_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", help="a registered encoder in place of the config's")
    parser.add_argument("--encoder-kwargs", type=yaml_mapping, help="its keyword arguments, as YAML")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(CONFIG.read_text())
    data, policy_options = config["data"]["init_args"], config["model"]["init_args"]["policy"]
    if args.encoder:
        model_info(args.encoder)  # an unknown name stops here, before the demos load
        policy_options.update(encoder=args.encoder, encoder_kwargs=args.encoder_kwargs or {})
    with tempfile.TemporaryDirectory() as tmp:
        path = demos_path(args.demos, data, tmp)
        meta = {"world": data["world"], **load_demos(path)[1]}  # a set LeRobot wrote: the config names its world
        dm = DemoDataModule(
            path=path, world=meta["world"], episodes=None, world_options=data["world_options"], val_fraction=0,
            batch_size=data["batch_size"], batch_by=data["batch_by"],
        )  # fmt: skip
        dm.setup("fit")
        batches, trained = endless(dm), {}
        for side in SIDES:
            torch.manual_seed(0)
            policy = Policy(PolicyConfig(**policy_options))
            policy.set_stats(dm.stats)
            trained[side] = (policy.train(), torch.optim.AdamW(policy.parameters(), lr=1e-3))
        for side, bf16 in SIDES.items():  # warm-up: first calls allocate
            time_steps(*trained[side], batches, 2, bf16=bf16)
        seconds: dict[str, list[float]] = {side: [] for side in SIDES}
        for _ in range(args.rounds):
            for side, bf16 in SIDES.items():
                seconds[side].append(time_steps(*trained[side], batches, args.steps, bf16=bf16)[0])
    ratios = sorted(f / b for f, b in zip(*seconds.values()))
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    setting = f"batch {data['batch_size']}, {args.threads} threads, {args.rounds} rounds x {args.steps} steps"
    print(f"{policy_options['encoder']} on {meta['world']}, {setting}")
    for side in SIDES:
        print(f"  {side:<14} {1000 * statistics.median(seconds[side]):6.1f} ms/step")
    print(f"  float32 / bf16: {statistics.median(ratios):.2f} (IQR {q1:.2f}-{q3:.2f})")


if __name__ == "__main__":
    run(main)

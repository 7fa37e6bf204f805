"""What a person sees of a pipeline: each stage's framework output in its log file, its progress on disk, one live
line per stage, and Lightning's summary and checkpoints without their needless lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary

from bridge.lit import ImageClassifier
from bridge.lit.callbacks import LastCheckpoint, ProgressFile
from bridge.vla import PolicyConfig
from bridge.vla.training import VLAPolicy
from recipes.live_view import LiveView, stage_row
from recipes.resumable import LOG, output_to, run_stage


def test_output_to_sends_the_process_and_its_children_to_the_file(tmp_path, capfd):
    log = tmp_path / "log.txt"
    with output_to(log):
        print("from python", flush=True)
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a child\\n')"], check=True)
    print("after")
    assert log.read_text().splitlines() == ["from python", "from a child"]
    assert capfd.readouterr().out == "after\n"


def test_a_quiet_stage_keeps_its_output_in_its_folder_and_announces_itself(tmp_path, capfd):
    def work(folder, resume):
        print("lightning says a lot")
        return {"value": 1}

    assert run_stage(tmp_path, "a", {}, work, quiet=True) == {"value": 1}
    out = capfd.readouterr().out
    assert "=== a ===" in out and "lightning says a lot" not in out
    assert (tmp_path / "a" / LOG).read_text() == "lightning says a lot\n"
    run_stage(tmp_path, "b", {}, work, quiet=True, announce=False)
    assert capfd.readouterr().out == ""
    assert "=== b ===" in (tmp_path / "b" / LOG).read_text()


def test_progress_file_follows_training(tmp_path):
    model = torch.nn.Linear(2, 1)

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = model

        def training_step(self, batch, batch_idx):
            return self.layer(batch).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.randn(12, 2), batch_size=2)
    trainer = L.Trainer(max_steps=5, default_root_dir=tmp_path, callbacks=[ProgressFile(every=0)], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(Tiny(), data)
    progress = json.loads((tmp_path / ProgressFile.NAME).read_text())
    assert progress["step"] == progress["steps"] == 5 and progress["seconds"] > 0


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_a_stage_row_reads_what_the_stage_left(tmp_path):
    policy = tmp_path / "policy-resnet-scratch-seed2"
    write(policy / "stage.json", {})
    assert stage_row(policy) == ["policy-resnet-scratch", "2", "", "", "", "starting"]
    write(policy / ProgressFile.NAME, {"step": 30, "steps": 120, "seconds": 15.0})
    assert stage_row(policy) == ["policy-resnet-scratch", "2", "30/120", "", "0:45", "training"]
    write(policy / "result.json", {"curve": []})
    assert stage_row(policy)[-1] == "trained"
    write(policy / "eval-step-60" / "stage.json", {})
    write(policy / "eval-step-60" / "result.json", {"conditions": {"policy": {"success_rate": 0.25}}})
    write(policy / "eval" / "stage.json", {})
    assert stage_row(policy)[3:] == ["25%", "", "evaluating 2/2"]
    write(policy / "eval" / "result.json", {"conditions": {"policy": {"success_rate": 0.5}}})
    assert stage_row(policy)[3:] == ["50%", "", "done"]
    write(tmp_path / "pretrain-resnet-seed0" / "result.json", {"val_acc": 0.97})
    assert stage_row(tmp_path / "pretrain-resnet-seed0")[3] == "accuracy 97%"


def test_the_live_view_stays_off_a_terminal(tmp_path):
    write(tmp_path / "baselines" / "stage.json", {})
    with LiveView(tmp_path, "title") as view:
        assert not view.enabled  # pytest's output is no terminal: the stages announce themselves instead
    assert [row.header for row in view.table().columns] == ["stage", "seed", "step", "result", "time left", "state"]
    assert view.table().row_count == 1


def test_lightning_summary_counts_the_flops_of_both_modules():
    policy = VLAPolicy(PolicyConfig(encoder="resnet20", encoder_kwargs={"layers": [1, 1], "widths": [8, 16]},
                                    image_size=32, world_options={"image_size": 32}, dim=32, depth=1))  # fmt: skip
    assert ModelSummary(policy).total_flops > 0

    classifier = ImageClassifier("lenet5", num_classes=10, in_chans=1)

    class Data:
        image_size, in_chans, num_classes = 32, 1, 10

    classifier._trainer = type("Trainer", (), {"datamodule": Data()})()  # setup reads the data's image size
    classifier.setup("fit")
    classifier._trainer = None
    assert ModelSummary(classifier).total_flops > 0


def test_last_checkpoint_says_what_it_saves(tmp_path, caplog):
    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.randn(6, 2), batch_size=2)
    trainer = L.Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                        callbacks=[LastCheckpoint(tmp_path / "checkpoints", every_n_train_steps=100)])  # fmt: skip
    with caplog.at_level(logging.INFO):
        trainer.fit(Tiny(), data)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "weights_only" not in caplog.text

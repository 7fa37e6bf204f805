"""Demonstrations as datasets, the DataModule, action normalisation/bins/chunks, and the tokenizer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from bridge.errors import BridgeError, CorruptFileError
from bridge.vla.demos import DemoDataModule, collect_demos, decode_frames, load_demos, save_demos
from bridge.vla.demos.format import FORMAT_VERSION
from bridge.vla.demos.frames import chunk_indices, history_indices
from bridge.vla.policy.actions import ActionBins, MinMaxNormalizer
from bridge.vla.policy.language import build_text_encoder, train_tokenizer, unknown_words, wrap_tokenizer
from bridge.vla.worlds import get_world
from bridge.vla.worlds.reach import ReachEnv, instructions

TINY_WORLD = {"image_size": 32, "num_objects": 2}
LEROBOT_KEYS = {"observation.image", "observation.state", "action", "task", "episode_index", "frame_index"}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    dataset, meta = collect_demos(get_world("reach", **TINY_WORLD), 12, seed=3, progress=False)
    path = save_demos(dataset, meta, tmp_path_factory.mktemp("demos") / "reach")
    return dataset, meta, path


def test_demos_use_lerobot_keys_and_replay_the_world(demos):
    dataset, meta, _ = demos
    assert set(dataset.column_names) == LEROBOT_KEYS
    assert meta["num_episodes"] == 12 and meta["num_frames"] == len(dataset)
    episodes = np.asarray(dataset["episode_index"])
    assert sorted(set(episodes)) == list(range(12)) and np.all(np.diff(episodes) >= 0)
    first = dataset.filter(lambda row: row["episode_index"] == 0)
    assert first["frame_index"] == list(range(len(first)))
    # Episode 0 is seed 3's scene: the same first frame and instruction as a fresh reset.
    obs, _ = ReachEnv(**TINY_WORLD).reset(seed=3)
    assert np.array_equal(np.asarray(first[0]["observation.image"]), obs["image"])
    assert first[0]["task"] == obs["task"]
    assert np.all(np.abs(np.asarray(dataset["action"])) <= 1)


def test_demo_set_round_trips_through_disk(demos):
    dataset, meta, path = demos
    loaded, loaded_meta = load_demos(path)
    assert loaded_meta == json.loads(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    assert len(loaded) == len(dataset) and loaded.features == dataset.features
    for i in (0, len(dataset) - 1):
        a, b = loaded[i], dataset[i]
        assert np.array_equal(np.asarray(a["observation.image"]), np.asarray(b["observation.image"]))
        assert (
            a["observation.state"] == b["observation.state"] and a["action"] == b["action"] and a["task"] == b["task"]
        )


def test_frames_decode_chunk_by_chunk_into_one_tensor(demos):
    _, _, path = demos
    loaded, _ = load_demos(path)
    whole = np.stack([np.asarray(image) for image in loaded["observation.image"]])
    chunked = decode_frames(loaded, chunk=len(loaded) // 2 + 1)  # two chunks, the second one shorter
    assert chunked.dtype == torch.uint8 and np.array_equal(chunked.numpy(), whole)


def test_datamodule_serves_batches_with_action_chunks(demos):
    _, meta, path = demos
    dm = DemoDataModule(path=str(path), episodes=None, val_fraction=0.25, action_horizon=3, batch_size=8)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["observation.image"].shape == (8, 32, 32, 3) and batch["observation.image"].dtype == torch.uint8
    assert batch["observation.state"].shape == (8, 2)
    assert batch["action"].shape == (8, 3, 2) and batch["action_is_pad"].shape == (8, 3)
    assert len(batch["task"]) == 8 and isinstance(batch["task"][0], str)
    assert len(dm.train_set) + len(dm.val_set) == meta["num_frames"]
    assert dm.world.options == meta["world_options"] and dm.stats == meta["stats"]
    assert dm.world.name == meta["world"] == "reach"


def test_datamodule_by_episode_serves_whole_episodes_each_frame_once(demos):
    _, meta, path = demos
    dm = DemoDataModule(path=str(path), episodes=None, val_fraction=0.25, batch_size=8, batch_by="episode")
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert all(len(b["task"]) == 8 for b in batches) and len(batches) == len(dm.train_set) // 8
    batch = batches[0]
    assert batch["observation.image"].shape == (8, 32, 32, 3) and batch["observation.image_index"].shape == (8, 1)
    val = list(dm.val_dataloader())
    assert sum(len(b["task"]) for b in val) == len(dm.val_set)  # every held-out frame, none dropped
    with pytest.raises(ValueError, match="batch_by must be frame or episode, got 'step'"):
        DemoDataModule(path=str(path), batch_by="step")


def test_datamodule_collects_when_missing_and_refuses_a_mismatched_set(demos, tmp_path):
    dm = DemoDataModule(path=str(tmp_path / "new"), episodes=3, world_options=TINY_WORLD, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.meta["num_episodes"] == 3
    with pytest.raises(ValueError, match="episodes=3 .asked for 5."):
        DemoDataModule(path=str(tmp_path / "new"), episodes=5).setup("fit")
    with pytest.raises(ValueError, match="world_options.image_size=32 .asked for 64."):
        DemoDataModule(path=str(tmp_path / "new"), episodes=None, world_options={"image_size": 64}).setup("fit")
    with pytest.raises(ValueError, match=r"noise=0.1 \(asked for 0.5\).*drop world_options and noise"):
        DemoDataModule(path=str(tmp_path / "new"), episodes=None, noise=0.5).setup("fit")


def test_empty_missing_and_corrupted_demo_sets_say_how_to_fix_them(demos, tmp_path):
    dataset, meta, path = demos
    with pytest.raises(FileNotFoundError, match="vla collect"):
        load_demos(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="empty"):
        save_demos(dataset.select([]), meta, tmp_path / "empty")
    dataset.select([]).save_to_disk(str(tmp_path / "empty"), num_shards=1)  # made by hand
    (tmp_path / "empty" / "meta.json").write_text(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    with pytest.raises(ValueError, match="is empty"):
        load_demos(tmp_path / "empty")
    broken = shutil.copytree(path, tmp_path / "broken")
    (broken / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted"):
        load_demos(broken)
    for arrow in (tmp_path / "broken").glob("*.arrow"):
        arrow.write_bytes(b"garbage")
    (broken / "meta.json").write_text(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    with pytest.raises(ValueError, match="corrupted"):
        load_demos(broken)
    save_demos(dataset.remove_columns(["action"]), meta, tmp_path / "no_action")
    with pytest.raises(ValueError, match="lacks the columns \\['action'\\]"):
        load_demos(tmp_path / "no_action")


def test_a_demo_set_of_an_older_format_is_refused_with_the_fix(demos, tmp_path):
    _, meta, path = demos
    old = shutil.copytree(path, tmp_path / "old")
    fix = "collect it again: python -m bridge vla collect --episodes N --out .*old --overwrite"
    # Written before worlds had names: an env_id, the options under "env", no world or specs, no format version.
    legacy = {k: v for k, v in meta.items() if k not in ("world", "world_options", "observation", "action_space")}
    (old / "meta.json").write_text(json.dumps({"env_id": "bridge/Reach-v0", "env": meta["world_options"], **legacy}))
    with pytest.raises(CorruptFileError, match=fix):
        load_demos(old)
    with pytest.raises(CorruptFileError, match=fix):
        DemoDataModule(path=str(old), episodes=None, batch_size=4).setup("fit")
    # Format 1: the world's name and specs, its options under "env", no format version.
    v1 = {("env" if k == "world_options" else k): v for k, v in meta.items()}
    (old / "meta.json").write_text(json.dumps(v1))
    with pytest.raises(CorruptFileError, match=fix):
        load_demos(old)
    # Any other version than this bridge's is refused by its number.
    (old / "meta.json").write_text(json.dumps({**meta, "format_version": 1}))
    with pytest.raises(CorruptFileError, match=f"format version 1, this bridge reads version {FORMAT_VERSION}; {fix}"):
        load_demos(old)
    (old / "meta.json").write_text(json.dumps(meta))  # no version at all
    with pytest.raises(CorruptFileError, match=f"format version 1, this bridge reads version {FORMAT_VERSION}"):
        load_demos(old)


def test_save_replaces_only_a_demo_set_and_only_when_asked(demos, tmp_path):
    dataset, meta, path = demos
    with pytest.raises(BridgeError, match="--overwrite"):
        save_demos(dataset, meta, path)
    assert save_demos(dataset, meta, path, overwrite=True) == path
    assert load_demos(path)[1] == {"format_version": FORMAT_VERSION, **meta}
    # A user's folder, or a training run's, is never replaced: --overwrite is for demo sets only.
    run = tmp_path / "runs"
    (run / "my_run" / "checkpoints").mkdir(parents=True)
    (run / "my_run" / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    with pytest.raises(BridgeError, match="files bridge did not write"):
        save_demos(dataset, meta, run, overwrite=True)
    with pytest.raises(BridgeError, match="holds other files; collect the demos into another folder"):
        load_demos(run)
    assert (run / "my_run" / "checkpoints" / "best.ckpt").read_bytes() == b"weights"


# -- actions -------------------------------------------------------------------------------------------------


def test_min_max_normalisation_round_trips():
    norm = MinMaxNormalizer(2)
    norm.set_stats([-0.5, 0.0], [0.5, 2.0])
    x = torch.tensor([[-0.5, 0.0], [0.5, 2.0], [0.0, 1.0]])
    torch.testing.assert_close(norm.normalize(x), torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(norm.unnormalize(norm.normalize(x)), x)
    with pytest.raises(ValueError, match="invalid normalisation"):
        norm.set_stats([1.0, 0.0], [0.0, 1.0])


def test_bins_cover_the_range_and_decode_to_centres():
    bins = ActionBins(256)
    x = torch.tensor([-1.0, -0.999, 0.0, 0.999, 1.0, 5.0])
    idx = bins.encode(x)
    assert idx.tolist() == [0, 0, 128, 255, 255, 255]
    assert (bins.decode(idx) - x.clamp(-1, 1)).abs()[:5].max() <= 1 / 256 + 1e-6
    values = torch.linspace(-1, 1, 1001)
    assert (bins.decode(bins.encode(values)) - values).abs().max() <= 1 / 256 + 1e-6


def test_chunks_stay_inside_their_episode():
    episode = torch.tensor([0, 0, 0, 1, 1, 2])
    rows, is_pad = chunk_indices(episode, 3)
    assert rows.tolist() == [[0, 1, 2], [1, 2, 2], [2, 2, 2], [3, 4, 4], [4, 4, 4], [5, 5, 5]]
    assert is_pad.tolist() == [
        [False, False, False], [False, False, True], [False, True, True],
        [False, False, True], [False, True, True], [False, True, True],
    ]  # fmt: skip
    with pytest.raises(ValueError, match="sorted"):
        chunk_indices(torch.tensor([1, 0]), 2)


def test_frame_history_stays_inside_its_episode():
    episode = torch.tensor([0, 0, 0, 1, 1, 2])
    assert history_indices(episode, 3).tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [3, 3, 3], [3, 3, 4], [5, 5, 5]]


# -- language -------------------------------------------------------------------------------------------------


def test_tokenizer_round_trips_through_save_pretrained_and_auto_tokenizer(tmp_path):
    tokenizer = train_tokenizer(instructions("train"))
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "go to the red circle"
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded.decode(reloaded(text)["input_ids"], skip_special_tokens=True) == text
    again = wrap_tokenizer(tokenizer.backend_tokenizer.to_str())  # the copy a checkpoint carries
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_unknown_words_map_to_the_unknown_token():
    tokenizer = train_tokenizer(instructions("train"))
    ids = tokenizer("approach the Purple circle")["input_ids"]
    assert ids.count(tokenizer.unk_token_id) == 2  # "approach" (held out) and "purple" (no such colour)
    assert unknown_words(tokenizer, "make your way to the blue square") == ["make", "way", "your"]
    assert not unknown_words(tokenizer, "GO to the  Blue square")  # case and spacing do not matter


def test_text_encoder_pools_only_real_tokens():
    encoder = build_text_encoder(None, instructions("train"), dim=16, layers=1, heads=2).eval()
    out = encoder(["go to the red circle", ""])
    assert out.tokens.shape[:2] == out.mask.shape and out.pooled.shape == (2, 16)
    assert out.mask[1].sum() == 2  # a blank instruction is [CLS] [SEP]
    alone = encoder(["go to the red circle"])
    torch.testing.assert_close(alone.pooled[0], out.pooled[0], atol=1e-5, rtol=1e-5)  # padding does not leak in

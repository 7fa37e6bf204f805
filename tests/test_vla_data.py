"""Demonstrations as datasets, the DataModule, action normalisation/bins/chunks, and the tokenizer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoTokenizer

from bridge.errors import BridgeError, CorruptFileError
from bridge.runs import mark_folder
from bridge.vla.demos import DEMOS, DemoDataModule, collect_demos, decode_frames, load_demos, save_demos
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


def test_demo_set_round_trips_through_disk_in_lerobots_layout(demos):
    dataset, meta, path = demos
    loaded, loaded_meta = load_demos(path)
    # All of collect_demos' meta comes back, with the format version (the statistics and features are checked below).
    collected = json.loads(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    assert {k: v for k, v in loaded_meta.items() if k not in ("stats", "features")} == collected
    assert len(loaded) == len(dataset) and loaded.features == dataset.features
    info = json.loads((path / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 12 and info["fps"] == meta["fps"]
    assert info["features"]["observation.image"] == {"dtype": "image", "shape": [32, 32, 3],
                                                     "names": ["height", "width", "channel"]}  # fmt: skip
    frames = pq.read_table(path / "data/chunk-000/file-000.parquet")
    assert frames.column_names == list(info["features"])  # task_index, not the task: tasks.parquet names them
    assert frames["index"].to_pylist() == list(range(len(dataset)))
    assert np.allclose(frames["timestamp"].to_numpy(), np.asarray(dataset["frame_index"]) / meta["fps"])
    episodes = pq.read_table(path / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in episodes] == np.bincount(dataset["episode_index"]).tolist()
    assert episodes[1]["dataset_from_index"] == episodes[0]["dataset_to_index"] == episodes[0]["length"]
    actions = np.asarray(dataset["action"])
    assert np.allclose(loaded_meta["stats"]["action"]["min"], actions.min(0))
    assert np.allclose(loaded_meta["stats"]["action"]["std"], actions.std(0), atol=1e-6)
    assert np.asarray(loaded_meta["stats"]["observation.image"]["mean"]).shape == (3, 1, 1)
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
    assert dm.world.options == meta["world_options"] and dm.stats == load_demos(path)[1]["stats"]
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
    with pytest.raises(ValueError, match="lacks the columns \\['action'\\]"):
        save_demos(dataset.remove_columns(["action"]), meta, tmp_path / "no_action")
    fix = "collect it again: python -m bridge vla collect (--world reach )?--episodes N --out .*{} --overwrite"
    empty = shutil.copytree(path, tmp_path / "empty")
    data = empty / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(data).slice(0, 0), data)
    with pytest.raises(CorruptFileError, match=f"is empty; {fix.format('empty')}"):
        load_demos(empty)
    broken = shutil.copytree(path, tmp_path / "broken")
    (broken / "meta/info.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match=f"corrupted.*{fix.format('broken')}"):
        load_demos(broken)
    shutil.copy(path / "meta/info.json", broken / "meta/info.json")
    (broken / "data/chunk-000/file-000.parquet").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="corrupted"):
        load_demos(broken)


def test_the_hint_to_collect_again_collects_the_world_asked_for(demos, tmp_path):
    import shlex

    from bridge.cli import build_parser
    from bridge.vla.commands import parse_options

    _, _, path = demos
    broken = shutil.copytree(path, tmp_path / "broken")
    (broken / "meta/info.json").write_text("{not json")
    with pytest.raises(CorruptFileError) as err:
        load_demos(broken, "babyai:GoToRedBall", {"n_obs_steps": 3, "view": "full"})
    hint = str(err.value).split("collect it again: python -m bridge ")[1]
    args = build_parser().parse_args(shlex.split(hint.replace(" N ", " 7 ")))  # run as printed
    assert (args.world, parse_options(args.world_options)) == ("babyai:GoToRedBall", {"n_obs_steps": 3, "view": "full"})
    assert args.episodes == 7
    assert args.overwrite and args.out == str(broken)


def edit_info(path, tmp_path, name: str, edit) -> object:
    """A copy of the set at ``path`` whose info.json ``edit`` changed in place."""
    copy = shutil.copytree(path, tmp_path / name)
    info = json.loads((copy / "meta/info.json").read_text())
    edit(info)
    (copy / "meta/info.json").write_text(json.dumps(info))
    return copy


def test_a_set_without_what_the_policy_trains_on_is_refused_by_name(demos, tmp_path):
    _, _, path = demos
    no_action = edit_info(path, tmp_path, "no_action", lambda info: info["features"].pop("action"))
    with pytest.raises(BridgeError, match="has no action feature; bridge trains on an image"):
        load_demos(no_action)
    videos = edit_info(
        path, tmp_path, "videos", lambda info: info["features"]["observation.image"].update(dtype="video")
    )
    with pytest.raises(BridgeError, match=r"stores its frames as videos \(observation.image\).*use_videos=False"):
        load_demos(videos)
    two = edit_info(path, tmp_path, "two", lambda info: info["features"].update(
        {"observation.images.top": {"dtype": "image", "shape": [32, 32, 3]},
         "observation.images.wrist": info["features"].pop("observation.image")}))  # fmt: skip
    with pytest.raises(BridgeError, match=r"2 cameras \(observation.images.top, observation.images.wrist\)"):
        load_demos(two)
    no_stats = shutil.copytree(path, tmp_path / "no_stats")
    (no_stats / "meta/stats.json").write_text(json.dumps({"observation.state": {"min": [0, 0], "max": [1, 1]}}))
    with pytest.raises(BridgeError, match="no min and max of action in meta/stats.json, which the policy normalises"):
        load_demos(no_stats)
    # A set without bridge's metadata (as LeRobot writes them) is of the world the DataModule names...
    foreign = edit_info(path, tmp_path, "foreign", lambda info: info.pop("bridge"))
    dm = DemoDataModule(path=str(foreign), world="reach", world_options=TINY_WORLD, episodes=None, batch_size=4)
    dm.setup("fit")
    assert dm.world.options["image_size"] == 32 and "world" not in dm.meta
    assert next(iter(dm.train_dataloader()))["observation.image"].shape == (4, 32, 32, 3)
    # ... and trains only where its shapes fit that world.
    with pytest.raises(BridgeError, match=r"does not fit world reach.*observation.image of shape \[32, 32, 3\] "
                                          r"\(world reach: \[64, 64, 3\]\).*data.init_args.world"):  # fmt: skip
        DemoDataModule(path=str(foreign), episodes=None).setup("fit")


def test_a_demo_set_of_an_older_format_is_refused_with_the_fix(demos, tmp_path):
    dataset, meta, path = demos
    fix = "collect it again: python -m bridge vla collect (--world reach )?--episodes N --out .*{} --overwrite"
    # bridge's format 2: a Dataset.save_to_disk folder and meta.json, in a folder bridge marked as demos.
    old = tmp_path / "old"
    dataset.save_to_disk(str(old))
    (old / "meta.json").write_text(json.dumps({"format_version": 2, **meta}))
    mark_folder(old, DEMOS)
    with pytest.raises(
        CorruptFileError, match=f"earlier bridge .Dataset.save_to_disk and meta.json.*{fix.format('old')}"
    ):
        load_demos(old)
    with pytest.raises(CorruptFileError, match=fix.format("old")):
        DemoDataModule(path=str(old), episodes=None, batch_size=4).setup("fit")
    # Any other version than this bridge's is refused by its number; LeRobot's older layouts too.
    v2 = edit_info(path, tmp_path, "v2", lambda info: info["bridge"].update(format_version=2))
    with pytest.raises(
        CorruptFileError, match=f"format version 2, this bridge reads {FORMAT_VERSION}; {fix.format('v2')}"
    ):
        load_demos(v2)
    lerobot_v21 = edit_info(path, tmp_path, "v21", lambda info: info.update(codebase_version="v2.1"))
    with pytest.raises(CorruptFileError, match="LeRobot v2.1; bridge reads v3 sets. Convert it with LeRobot's"):
        load_demos(lerobot_v21)


def test_save_replaces_only_a_demo_set_and_only_when_asked(demos, tmp_path):
    dataset, meta, path = demos
    with pytest.raises(BridgeError, match="--overwrite"):
        save_demos(dataset, meta, path)
    assert save_demos(dataset, meta, path, overwrite=True) == path
    assert load_demos(path)[1]["world_options"] == meta["world_options"]
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

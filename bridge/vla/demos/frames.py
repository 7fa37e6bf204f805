"""Demo frames as training samples: decoded once into tensors, each with its next actions (a chunk) and its last
frames (a history), and a sampler that keeps an episode's frames together so a batch holds each frame once."""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from torch import Tensor

from bridge.errors import CorruptFileError
from bridge.vla.worlds import ActionSpace


def decode_frames(dataset: Dataset, chunk: int = 4096) -> torch.Tensor:
    """All of ``observation.image`` as one (N, H, W, 3) uint8 tensor, decoded a chunk at a time into it.

    Decoding the column in one go would hold every frame at least twice (the decoded list and the stacked
    array); chunk by chunk, the peak is the tensor and one chunk.
    """
    column = dataset.select_columns("observation.image").with_format("numpy")
    first = column[0]["observation.image"]
    images = torch.empty((len(dataset), *first.shape), dtype=torch.uint8)
    for start in range(0, len(dataset), chunk):
        part = column[start : start + chunk]["observation.image"]
        images[start : start + len(part)] = torch.from_numpy(np.asarray(part))
    return images


class DemoFrames(torch.utils.data.Dataset):
    """Frames with their next ``horizon`` actions, held in memory as tensors (a toy-scale set is ~0.2 GB).

    With ``n_obs_steps`` k > 1 each item's image is its last k frames (k, H, W, 3), as the rollout shows them.
    """

    def __init__(self, dataset: Dataset, horizon: int, action_space: ActionSpace, n_obs_steps: int = 1) -> None:
        columns = dataset.remove_columns("observation.image").with_format("numpy")[:]
        self.images = decode_frames(dataset)
        episode_index = torch.from_numpy(columns["episode_index"])
        self.history = history_indices(episode_index, n_obs_steps) if n_obs_steps > 1 else None
        n = len(self.images)
        # A world without a state vector serves (N, 0) states, so every batch has the same keys.
        states = columns["observation.state"] if "observation.state" in columns else np.zeros((n, 0), np.float32)
        self.states = torch.from_numpy(states).float()
        actions = torch.from_numpy(columns["action"])
        actions = actions.float() if action_space.kind == "box" else actions.long()
        low, high = action_space.low, action_space.high
        if not torch.isfinite(actions.float()).all() or actions.min() < low - 1e-5 or actions.max() > high + 1e-5:
            raise CorruptFileError(
                f"the demo set holds actions outside the action space {action_space} or non-finite ones; "
                "collect it again, or (for a set bridge did not collect) name the world its actions are of"
            )
        rows, self.is_pad = chunk_indices(episode_index, horizon)
        self.chunks = actions[rows]  # (N, horizon, *action shape)
        self.tasks = [str(t) for t in columns["task"]]
        self.episode_index = episode_index

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i: int | list[int]) -> dict:
        """Item ``i``, or with a list of indices the batch of them with each distinct frame once (:meth:`batch`)."""
        if isinstance(i, list):
            return self.batch(i)
        return {
            "observation.image": self.images[i] if self.history is None else self.images[self.history[i]],
            "observation.state": self.states[i],
            "action": self.chunks[i],
            "action_is_pad": self.is_pad[i],
            "task": self.tasks[i],
        }

    def batch(self, indices: list[int]) -> dict:
        """The items ``indices`` as one batch whose ``observation.image`` (U, H, W, 3) holds each distinct frame
        once and ``observation.image_index`` (B, k) the row of every item's frames in it.

        With a frame history, neighbouring steps of an episode share k - 1 frames: a batch of whole episodes
        holds each frame once instead of up to k times, and the policy encodes it once.
        """
        rows = torch.as_tensor(indices)
        history = rows[:, None] if self.history is None else self.history[rows]
        distinct, image_index = torch.unique(history, return_inverse=True)
        return {
            "observation.image": self.images[distinct],
            "observation.image_index": image_index,
            "observation.state": self.states[rows],
            "action": self.chunks[rows],
            "action_is_pad": self.is_pad[rows],
            "task": [self.tasks[i] for i in indices],
        }


class EpisodeOrder(torch.utils.data.Sampler[int]):
    """Every frame once per epoch, episode after episode in a fresh random order of episodes, each episode's
    frames in order, so a batch cut from it holds whole episodes (and their shared frames) together.

    ``seed`` None draws one from torch's global generator, so ``seed_everything`` fixes it; each epoch's order
    then follows from the seed and the epoch alone, so DDP ranks seeded alike cut the same batches to share.
    """

    def __init__(self, episode_index: torch.Tensor, seed: int | None = None) -> None:
        _, counts = torch.unique_consecutive(episode_index, return_counts=True)
        self.episodes = torch.arange(len(episode_index)).split(counts.tolist())
        self.seed = int(torch.randint(2**62, ())) if seed is None else seed
        self.epoch = 0

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.episodes)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        for e in torch.randperm(len(self.episodes), generator=generator).tolist():
            yield from self.episodes[e].tolist()


def chunk_indices(episode_index: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
    """For each frame, the rows of its next ``horizon`` actions within the same episode (ACT's chunks).

    ``episode_index`` (N,) must be sorted (frames of an episode contiguous and in order). Steps past the
    episode's end repeat its last row and are flagged in ``is_pad`` (N, horizon) so losses can skip them.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    n = episode_index.numel()
    if n and (episode_index[1:] < episode_index[:-1]).any():
        raise ValueError("episode_index must be sorted: frames of one episode contiguous and in order")
    _, counts = torch.unique_consecutive(episode_index, return_counts=True)
    ends = torch.repeat_interleave(torch.cumsum(counts, 0) - 1, counts)  # last row of each frame's episode
    wanted = torch.arange(n)[:, None] + torch.arange(horizon)[None]
    is_pad = wanted > ends[:, None]
    return torch.minimum(wanted, ends[:, None]), is_pad


def history_indices(episode_index: Tensor, k: int) -> Tensor:
    """For each frame, the rows of its last ``k`` frames within the same episode, oldest first (N, k).

    Before an episode's start its first frame stands in, as the rollout does for an agent with a frame history.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _, counts = torch.unique_consecutive(episode_index, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)  # first row of each frame's episode
    wanted = torch.arange(episode_index.numel())[:, None] - torch.arange(k - 1, -1, -1)[None]
    return torch.maximum(wanted, starts[:, None])

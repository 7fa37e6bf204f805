"""The reference for time_to_success.py: a lean behaviour-cloning loop in plain PyTorch, about a hundred lines.

It is BabyAI 1.1's pixel model without its memory (Hui et al., 2020): an 8x8, stride-8 stem (one token per BabyAI
cell), two residual FiLM blocks conditioned on a bag of words, a max pool and a two-layer head; the last frames are
stacked as channels in place of the LSTM. Frames sit in one uint8 tensor, batches are uniform draws of frames, and
AdamW runs at a constant rate: nothing the project's stack has is used to train it, only its demo reader.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bridge.vla.demos import decode_frames, load_demos
from bridge.vla.worlds import World

PAD, UNKNOWN = 0, 1  # word ids; the world's training instructions' words come after them


class FiLMBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, scaled and shifted by the instruction (FiLM), ReLU, and the skip around it all."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.film = nn.Linear(width, 2 * width)

    def forward(self, x: Tensor, text: Tensor) -> Tensor:
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        gamma, beta = self.film(text)[..., None, None].chunk(2, dim=1)
        return x + F.relu(h * (1 + gamma) + beta)  # 1 + gamma: a block starts as a plain residual block


class LeanPolicy(nn.Module):
    def __init__(self, vocab: int, frames: int, state_dim: int, outputs: int, width: int = 128) -> None:
        super().__init__()
        self.words = nn.EmbeddingBag(vocab, width, mode="mean", padding_idx=PAD)
        self.stem = nn.Sequential(nn.Conv2d(3 * frames, width, 8, stride=8), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList([FiLMBlock(width), FiLMBlock(width)])
        self.state = nn.Linear(state_dim, width) if state_dim else None
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs))

    def forward(self, images: Tensor, words: Tensor, state: Tensor | None) -> Tensor:
        """``images`` (n, k, H, W, 3) uint8, ``words`` (n, L) ids, ``state`` (n, d) or None -> (n, outputs)."""
        x = self.stem(images.permute(0, 1, 4, 2, 3).flatten(1, 2).float().div(255))
        text = self.words(words)
        for block in self.blocks:
            x = block(x, text)
        x = x.amax(dim=(2, 3))
        if self.state is not None:
            x = x + self.state(state)
        return self.head(x)


class Words:
    """A bag-of-words vocabulary of the world's training instructions; other words are one unknown id."""

    def __init__(self, world: World) -> None:
        words = sorted({w for text in world.instructions("train") for w in re.findall(r"\w+", text.lower())})
        self.ids = {w: i + 2 for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.ids) + 2

    def __call__(self, texts: list[str]) -> Tensor:
        rows = [[self.ids.get(w, UNKNOWN) for w in re.findall(r"\w+", t.lower())] or [PAD] for t in texts]
        out = torch.full((len(rows), max(map(len, rows))), PAD)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out


class LeanLoop:
    """The demo set at ``path`` in memory and a LeanPolicy learning from it: ``step()`` is one optimiser step."""

    def __init__(self, path: str, world: World, seed: int, batch_size: int = 256, lr: float = 1e-3, width: int = 128):
        torch.manual_seed(seed)
        dataset, _ = load_demos(path, world.name, world.options)
        self.world, self.batch_size = world, batch_size
        self.frames = decode_frames(dataset)
        k, space = world.observation.n_obs_steps, world.action_space
        # The last k frames of each frame's episode, oldest first; an episode's first frame stands in before it.
        frame_index = torch.as_tensor(dataset["frame_index"])
        back = torch.arange(k - 1, -1, -1)
        self.history = torch.arange(len(dataset))[:, None] - torch.minimum(back[None], frame_index[:, None])
        self.words = Words(world)
        self.tasks = self.words(dataset["task"])
        self.states = torch.as_tensor(dataset["observation.state"]) if world.observation.state_dim else None
        actions = torch.as_tensor(dataset["action"])
        self.discrete = space.kind == "discrete"
        self.low, self.high = space.low, space.high
        self.actions = actions if self.discrete else (actions - self.low) / (self.high - self.low) * 2 - 1
        self.model = LeanPolicy(len(self.words), k, world.observation.state_dim, space.size, width)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self) -> Tensor:
        i = torch.randint(len(self.frames), (self.batch_size,), generator=self.generator)
        states = None if self.states is None else self.states[i]
        out = self.model(self.frames[self.history[i]], self.tasks[i], states)
        return F.cross_entropy(out, self.actions[i]) if self.discrete else F.l1_loss(out, self.actions[i])

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss().backward()
        self.optimizer.step()

    @torch.no_grad()
    def act(self, obs: dict, info: dict) -> object:
        """The evaluation agent: (observations, info) -> actions, in the world's units."""
        self.model.eval()
        images = torch.as_tensor(obs["image"])
        images = images[:, None] if images.ndim == 4 else images  # one frame: a history of one
        state = torch.as_tensor(obs["state"]) if self.states is not None else None
        out = self.model(images, self.words(list(obs["task"])), state)
        self.model.train()
        if self.discrete:
            return out.argmax(-1).numpy()
        return ((out.clamp(-1, 1) + 1) / 2 * (self.high - self.low) + self.low).numpy()

"""The policy: FiLM, conditioning, both action heads learning a tiny problem, encoders and their weights, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from bridge.errors import ConfigError, CorruptFileError, MissingFileError
from bridge.lit.classifier import ImageClassifier
from bridge.nn.film import FiLM
from bridge.vla.policy.configuration import PolicyConfig, config_mismatch
from bridge.vla.policy.language import train_tokenizer
from bridge.vla.policy.loading import load_policy
from bridge.vla.policy.modeling import Policy
from bridge.vla.worlds.reach import instructions

# A 16x16 world and a one-stage ResNet: 4x4 image tokens, fast enough to train in a test.
TINY_ENCODER = {"stem": "imagenet", "layers": [1], "widths": [8]}
TINY = dict(
    encoder="resnet20",
    encoder_kwargs=TINY_ENCODER,
    image_size=16,
    text_dim=16,
    text_layers=1,
    dim=32,
    depth=1,
    num_heads=2,
)


def tiny_policy(**overrides) -> Policy:
    torch.manual_seed(0)
    return Policy(PolicyConfig(**{**TINY, **overrides}))


def frames(n: int, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))


def test_film_starts_as_the_identity_on_tokens_and_maps():
    film = FiLM(cond_dim=5, dim=4)
    cond = torch.randn(2, 5)
    tokens, maps = torch.randn(2, 7, 4), torch.randn(2, 4, 3, 3)
    assert torch.equal(film(tokens, cond), tokens) and torch.equal(film(maps, cond), maps)
    with torch.no_grad():
        film.proj.bias.copy_(torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 2.0]))  # gamma_0 = 1, beta_3 = 2
    out = film(maps, cond)
    torch.testing.assert_close(out[:, 0], 2 * maps[:, 0])
    torch.testing.assert_close(out[:, 3], maps[:, 3] + 2)


def test_zero_init_film_means_the_instruction_changes_nothing_at_step_zero():
    images, states = frames(2), torch.zeros(2, 2)
    film = tiny_policy(conditioning="film").eval()
    a = film(images, states, ["go to the red circle"] * 2)
    b = film(images, states, ["go to the blue square"] * 2)
    assert torch.equal(a, b)
    assert len(film.encoder_films) == 1  # inside the ResNet, after its stage
    prefix = tiny_policy(conditioning="prefix").eval()
    assert not torch.equal(
        prefix(images, states, ["go to the red circle"] * 2), prefix(images, states, ["go to the blue square"] * 2)
    )


@pytest.mark.parametrize("conditioning", ["film", "prefix", "both"])
@pytest.mark.parametrize("head, chunk", [("bins", 1), ("continuous", 3)])
def test_output_shapes(conditioning, head, chunk):
    policy = tiny_policy(conditioning=conditioning, head=head, chunk_size=chunk, num_bins=16)
    out = policy(frames(3), torch.zeros(3, 2), ["reach the green triangle", "", "an unknown word"])
    assert out.shape == ((3, chunk, 2, 16) if head == "bins" else (3, chunk, 2))
    actions = policy.predict(frames(3), torch.zeros(3, 2), ["a", "b", "c"])
    assert actions.shape == (3, chunk, 2) and actions.abs().max() <= 1


def _tiny_problem(n: int = 32, horizon: int = 3) -> dict:
    """Blank frames; the action is a fixed function of the state (and differs along the chunk)."""
    g = torch.Generator().manual_seed(0)
    states = torch.rand(n, 2, generator=g) * 2 - 1
    steps = torch.arange(horizon).float()[None, :, None]
    actions = (-states[:, None] * (1 - 0.2 * steps)).clamp(-1, 1)
    is_pad = torch.zeros(n, horizon, dtype=torch.bool)
    is_pad[: n // 4, -1] = True  # some chunks run past their episode's end
    return {
        "observation.image": torch.zeros(n, 16, 16, 3, dtype=torch.uint8),
        "observation.state": states, "action": actions, "action_is_pad": is_pad, "task": ["go to the red circle"] * n,
    }  # fmt: skip


@pytest.mark.parametrize("head, chunk", [("bins", 1), ("continuous", 3)])
def test_each_head_learns_a_tiny_problem(head, chunk):
    policy = tiny_policy(head=head, chunk_size=chunk, num_bins=32)
    batch = _tiny_problem()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        out = policy.compute_loss(batch)
        first = first if first is not None else out.loss.item()
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    policy.eval()
    predicted = policy.predict(batch["observation.image"], batch["observation.state"], batch["task"])
    error = (predicted - batch["action"][:, :chunk]).abs()[~batch["action_is_pad"][:, :chunk]].mean()
    assert out.loss.item() < first / 4, (first, out.loss.item())
    assert error < 0.1, f"{head} head: mean action error {error:.3f} after training"


def test_padded_chunk_steps_do_not_count():
    policy = tiny_policy(head="continuous", chunk_size=3).eval()  # eval: no dropout, the same loss twice
    batch = _tiny_problem()
    loss = policy.compute_loss(batch).loss
    batch["action"][batch["action_is_pad"]] = 100.0  # garbage where the chunk is padded
    torch.testing.assert_close(policy.compute_loss(batch).loss, loss)


def test_actions_are_normalised_with_the_data_stats():
    policy = tiny_policy(head="continuous")
    policy.set_stats(
        {"action": {"min": [-0.5, -0.5], "max": [0.5, 0.5]}, "observation.state": {"min": [-1, -1], "max": [1, 1]}}
    )
    assert policy.predict(frames(4), torch.zeros(4, 2), ["x"] * 4).abs().max() <= 0.5


# -- encoders -----------------------------------------------------------------------------------------------


def test_frames_of_the_wrong_size_name_the_expected_size():
    policy = tiny_policy()
    with pytest.raises(ValueError, match=r"\(B, 16, 16, 3\).*image_size=16"):
        policy(frames(2, size=32), torch.zeros(2, 2), ["a", "b"])


def test_an_encoder_built_for_another_size_is_refused_or_resized():
    vit = dict(
        TINY,
        encoder="vit_tiny_patch16_224",
        encoder_kwargs={"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 48},
    )
    with pytest.raises(ValueError, match="cannot take 16x16 frames.*input_size: 32"):
        Policy(PolicyConfig(**vit))
    policy = Policy(PolicyConfig(**vit, input_size=32))  # the documented resize
    assert policy.image_pos.shape == (16, 32)  # 4x4 patches of the resized 32x32 frame
    assert len(policy.encoder_films) == 1  # one FiLM per ViT block
    assert policy(frames(2), torch.zeros(2, 2), ["a", "b"]).shape == (2, 1, 2, 256)


def test_timm_encoder_and_frozen_training():
    policy = tiny_policy(encoder="timm:resnet10t", encoder_kwargs={}, freeze_encoder=True)
    assert not any(p.requires_grad for p in policy.encoder.parameters())
    assert all(p.requires_grad for p in policy.encoder_films.parameters())
    policy.train()
    assert not policy.encoder.training  # frozen BatchNorm statistics too
    out = policy.compute_loss(_tiny_problem(4, horizon=1))
    out.loss.backward()
    assert all(p.grad is None for p in policy.encoder.parameters())


def test_a_timm_encoder_whose_pooled_vector_is_wider_than_its_tokens():
    # MobileNetV3's conv head widens the pooled vector (1024) beyond the last feature map (576 channels).
    policy = tiny_policy(encoder="timm:mobilenetv3_small_100", encoder_kwargs={}, image_size=32)
    assert (policy.image_proj.in_features, policy.pooled_proj.in_features) == (576, 1024)
    assert policy(frames(2, 32), torch.zeros(2, 2), ["a", "b"]).shape == (2, 1, 2, 256)


def test_classifier_checkpoint_becomes_the_encoder(tmp_path):
    classifier = ImageClassifier("resnet20", num_classes=12, model_kwargs=TINY_ENCODER)
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": classifier.state_dict(), "hyper_parameters": dict(classifier.hparams)}, path)
    policy = tiny_policy(pretrained_file=str(path))
    assert torch.equal(policy.encoder.conv1.weight, classifier.model.conv1.weight)
    assert torch.equal(policy.encoder.layer1[0].branch.conv2.weight, classifier.model.layer1[0].branch.conv2.weight)
    with pytest.raises(ValueError, match="holds a resnet20 classifier.*set encoder: resnet20"):
        tiny_policy(encoder="resnet32", pretrained_file=str(path))


def test_pretrained_text_model_from_a_local_folder(tmp_path):
    tokenizer = train_tokenizer(instructions("all"))
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48
    )
    BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    policy = tiny_policy(text_encoder=str(tmp_path), freeze_text=True)
    assert policy.text.dim == 24 and not policy.text.trained_tokenizer
    assert not any(p.requires_grad for p in policy.text.parameters())
    assert policy(frames(2), torch.zeros(2, 2), ["approach the red circle", "b"]).shape == (2, 1, 2, 256)
    with pytest.raises(FileNotFoundError, match="local folder.*cache.*online"):
        tiny_policy(text_encoder=str(tmp_path / "missing"))


def test_config_mismatch_names_the_architecture_fields_only():
    saved = vars(PolicyConfig(head="bins", dim=64, pretrained=True))
    assert config_mismatch(saved, vars(PolicyConfig(head="bins", dim=64))) == []  # weights' origin is not architecture
    assert config_mismatch(saved, vars(PolicyConfig(head="continuous", dim=32))) == [
        "dim: 64 in the checkpoint, 32 here",
        "head: 'bins' in the checkpoint, 'continuous' here",
    ]


def test_agent_interface_returns_actions_in_the_space():
    policy = tiny_policy()
    obs = {
        "image": np.zeros((5, 16, 16, 3), np.uint8),
        "state": np.zeros((5, 2), np.float32),
        "task": ["go to the red circle"] * 5,
    }
    actions = policy.as_agent()(obs, {})
    assert actions.shape == (5, 2) and actions.dtype == np.float32 and np.abs(actions).max() <= 1
    assert policy.training  # the agent restores the mode it found


# -- saved policies ------------------------------------------------------------------------------------------


STATS = {"action": {"min": [-0.5, -0.2], "max": [0.5, 0.9]}, "observation.state": {"min": [-1, -1], "max": [1, 0.5]}}


@pytest.mark.parametrize("image_tokens", ["grid", "keypoints"])
def test_save_pretrained_and_from_pretrained_act_the_same(tmp_path, image_tokens):
    policy = tiny_policy(head="continuous", conditioning="both", world_options={"image_size": 16},
                         image_tokens=image_tokens, num_keypoints=4).eval()  # fmt: skip
    policy.set_stats(STATS)
    torch.nn.init.normal_(policy.encoder_films["layer1"].proj.weight)  # FiLM away from its zero start
    policy.save_pretrained(tmp_path / "policy")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "policy").iterdir()}
    for loaded in (Policy.from_pretrained(tmp_path / "policy"), load_policy(tmp_path / "policy")):
        assert loaded.config == policy.config and not loaded.training
        images, states, tasks = frames(3), torch.rand(3, 2), ["go to the red circle", "", "approach the blue square"]
        assert torch.equal(loaded.predict(images, states, tasks), policy.predict(images, states, tasks))
        assert loaded.text.tokenizer.get_vocab() == policy.text.tokenizer.get_vocab()


def test_the_loader_refuses_what_is_not_a_policy_and_says_why(tmp_path):
    classifier = ImageClassifier("resnet20", num_classes=3, model_kwargs=TINY_ENCODER)
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": classifier.state_dict(), "hyper_parameters": dict(classifier.hparams)}, path)
    with pytest.raises(ConfigError, match="ImageClassifier checkpoint of resnet20.*checkpoint of a VLA run"):
        load_policy(path)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "weights.pth")
    with pytest.raises(ConfigError, match="not a VLAPolicy checkpoint"):
        load_policy(tmp_path / "weights.pth")
    (tmp_path / "truncated.ckpt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_policy(tmp_path / "truncated.ckpt")
    with pytest.raises(MissingFileError, match="does not exist"):
        load_policy(tmp_path / "missing.ckpt")
    with pytest.raises(MissingFileError, match="without config.json"):
        load_policy(tmp_path)
    tiny_policy().save_pretrained(tmp_path / "policy")
    (tmp_path / "policy" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(CorruptFileError, match="truncated or damaged"):
        load_policy(tmp_path / "policy")

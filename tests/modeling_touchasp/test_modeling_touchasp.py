"""The encoder-decoder inside the Transformers API: padding, cache, beam search, save/load, remote code,
per-call k, gradient checkpointing and a real overfit on generated speech."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForSpeechSeq2Seq

from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration, TouchASPModel
from processing.feature_extraction_touchasp import TouchASPFeatureExtractor
from tests.conftest import HAS_ESPEAK, synthesize, tiny_config_kwargs


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return TouchASPForConditionalGeneration(tiny_config).eval()


def padded_pair(lengths=(120, 83)) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    features = torch.randn(len(lengths), max(lengths), 80)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        features[row, length:] = 0.0
    return features, mask


def test_fresh_weights_are_fan_in_scaled_so_the_front_end_passes_the_audio(tiny_config):
    """N(0, 0.02) on the 9-tap subsampling convs shrank unit-variance fbank to RMS 0.004 and learnt slower."""
    torch.manual_seed(0)
    model = TouchASPForConditionalGeneration(tiny_config).eval()
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) and name != "proj_out":
            fan_in = module.weight[0].numel()
            assert module.weight.abs().max() <= fan_in**-0.5 + 1e-6, name
            assert module.weight.std().item() == pytest.approx((3 * fan_in) ** -0.5, rel=0.25), name
    assert torch.equal(model.proj_out.weight, model.model.decoder.embed_tokens.weight)
    with torch.no_grad():
        frames = model.model.encoder.subsampling(torch.randn(2, 300, tiny_config.num_mel_bins))
    assert frames.pow(2).mean().sqrt() > 0.05


def test_padded_batch_equals_each_utterance_alone(model):
    """With wide biases, as a trained model has (wider than the init draws): a biased layer must not refill
    padded frames that a frame-mixing layer then reads."""
    features, mask = padded_pair()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) and module.bias is not None:
                module.bias.normal_(0.0, 0.5)
        batch = model.get_encoder()(features, mask)
        generated = model.generate(features, attention_mask=mask, max_new_tokens=6, do_sample=False)
        for row, length in enumerate(mask.sum(-1).tolist()):
            alone = model.get_encoder()(features[row : row + 1, :length])
            frames = alone.last_hidden_state.size(1)
            assert int(batch.attention_mask[row].sum()) == frames
            torch.testing.assert_close(batch.last_hidden_state[row, :frames], alone.last_hidden_state[0], atol=1e-5, rtol=1e-4)
            alone_ids = model.generate(features[row : row + 1, :length], max_new_tokens=6, do_sample=False)
            assert generated[row].tolist() == alone_ids[0].tolist()


def test_preallocated_cache_and_out_of_range_config_k_are_refused(model):
    features, mask = padded_pair()
    with pytest.raises(ValueError, match="dynamic cache only, not StaticCache"):
        model.generate(features, attention_mask=mask, max_new_tokens=3, cache_implementation="static")
    model.config.num_experts_per_tok = 9  # as from_pretrained(path, num_experts_per_tok=9) sets it
    with pytest.raises(ValueError, match=r"config.num_experts_per_tok must lie in 1..8"):
        model.generate(features, attention_mask=mask, max_new_tokens=3)


def test_eager_attention_equals_sdpa_in_teacher_forcing(model):
    """The decoder's training pass has no self-attention mask (causality comes from `is_causal`): eager must be
    causal there too, or `attn_implementation="eager"` (and `output_attentions`) sees the future tokens."""
    features, mask = padded_pair()
    labels = torch.tensor([[5, 6, 7, 8, 9, 2], [5, 7, 9, 2, -100, -100]])
    with torch.no_grad():
        sdpa = model(features, mask, labels=labels)
        model.set_attn_implementation("eager")
        eager = model(features, mask, labels=labels, output_attentions=True)
    torch.testing.assert_close(eager.logits, sdpa.logits, atol=1e-5, rtol=1e-4)
    self_attention = eager.decoder_attentions[0]
    assert torch.all(self_attention.triu(diagonal=1) == 0)


def test_generation_with_cache_equals_without_and_beam_runs(model):
    features, mask = padded_pair()
    with torch.no_grad():
        cached = model.generate(features, attention_mask=mask, max_new_tokens=8, use_cache=True)
        uncached = model.generate(features, attention_mask=mask, max_new_tokens=8, use_cache=False)
        beams = model.generate(features, attention_mask=mask, max_new_tokens=8, num_beams=3, num_return_sequences=2)
    assert cached.tolist() == uncached.tolist()
    assert cached.shape[1] > 1
    assert beams.shape[0] == 4 and (beams[:, 0] == model.config.decoder_start_token_id).all()


def test_generate_forwards_num_experts_per_tok(model):
    features, mask = padded_pair()
    with torch.no_grad():
        scores = {
            k: model.generate(
                features, attention_mask=mask, max_new_tokens=3, num_experts_per_tok=k,
                return_dict_in_generate=True, output_scores=True,
            ).scores[0]
            for k in (1, 4)
        }
        default = model.generate(features, attention_mask=mask, max_new_tokens=3, return_dict_in_generate=True,
                                 output_scores=True).scores[0]
    assert not torch.allclose(scores[1], scores[4])
    torch.testing.assert_close(default, scores[model.config.num_experts_per_tok])
    with pytest.raises(ValueError, match="num_experts_per_tok"):
        model.generate(features, attention_mask=mask, max_new_tokens=2, num_experts_per_tok=99)


def test_save_load_round_trip_and_k_override(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "emoe.py").exists()
    features, mask = padded_pair()
    decoder_input_ids = torch.tensor([[2, 7, 8], [2, 9, 10]])
    with torch.no_grad():
        expected = model(features, mask, decoder_input_ids=decoder_input_ids).logits
        loaded = AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path).eval()
        torch.testing.assert_close(loaded(features, mask, decoder_input_ids=decoder_input_ids).logits, expected)
        override = AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path, num_experts_per_tok=2).eval()
        assert override.config.num_experts_per_tok == 2
        at_two = model(features, mask, decoder_input_ids=decoder_input_ids, num_experts_per_tok=2).logits
        torch.testing.assert_close(override(features, mask, decoder_input_ids=decoder_input_ids).logits, at_two)
    assert isinstance(AutoModel.from_pretrained(tmp_path), TouchASPModel)


def test_trust_remote_code_in_fresh_process(model, tmp_path):
    folder = tmp_path / "touchasp-tiny"
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSpeechSeq2Seq"] == "modeling_touchasp.TouchASPForConditionalGeneration"
    features, mask = padded_pair()
    np.save(tmp_path / "features.npy", features.numpy())
    np.save(tmp_path / "mask.npy", mask.numpy())
    script = textwrap.dedent(f"""
        import sys, numpy as np, torch
        from transformers import AutoModelForSpeechSeq2Seq
        model = AutoModelForSpeechSeq2Seq.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert "modeling_touchasp" not in sys.modules, "the package was imported"
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        features = torch.from_numpy(np.load({str(tmp_path / "features.npy")!r}))
        mask = torch.from_numpy(np.load({str(tmp_path / "mask.npy")!r}))
        with torch.no_grad():
            ids = model.generate(features, attention_mask=mask, max_new_tokens=6)
        np.save({str(tmp_path / "remote_ids.npy")!r}, ids.numpy())
    """)
    env = {**os.environ, "PYTHONPATH": "", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True, timeout=300)
    with torch.no_grad():
        local_ids = model.generate(features, attention_mask=mask, max_new_tokens=6)
    assert np.load(tmp_path / "remote_ids.npy").tolist() == local_ids.tolist()


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config):
    torch.manual_seed(0)
    model = TouchASPForConditionalGeneration(tiny_config).train()
    features, mask = padded_pair()
    labels = torch.tensor([[7, 8, 9, 3], [10, 11, 3, -100]])

    def gradients():
        model.zero_grad()
        model(features, mask, labels=labels, elastic_step=11).loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = gradients()
    model.activation_checkpointing_enable()
    checkpointed = gradients()
    assert len(plain) == len(checkpointed)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_router_logits_on_request(model, tiny_config):
    features, mask = padded_pair()
    with torch.no_grad():
        output = model(features, mask, decoder_input_ids=torch.tensor([[2], [2]]), output_router_logits=True)
    assert len(output.encoder_router_logits) == 2 * tiny_config.encoder_layers
    assert len(output.decoder_router_logits) == tiny_config.decoder_layers
    assert output.encoder_router_logits[0].shape[-1] == tiny_config.n_routed_experts


def test_bad_feature_shapes_raise_clear_errors(model):
    with pytest.raises(ValueError, match="input_features must be"):
        model.generate(torch.randn(1, 50, 40))
    with pytest.raises(ValueError, match="at least 7 frames"):
        model.generate(torch.randn(1, 3, 80))


PHRASES = ["hello world", "good morning", "open the door", "thank you very much"]


def test_tiny_model_overfits_four_generated_utterances(tmp_path):
    """Loss falls by >= 90% on four real (espeak-ng) utterances: the model, losses and gradients are wired."""
    extractor = TouchASPFeatureExtractor()
    if HAS_ESPEAK:
        audio = [str(synthesize(text, tmp_path / f"{i}.wav")) for i, text in enumerate(PHRASES)]
    else:
        rng = np.random.default_rng(0)
        audio = [rng.normal(0, 0.1, 16000 + 4000 * i).astype(np.float32) for i in range(4)]
    batch = extractor(audio, sampling_rate=16000, return_tensors="pt")
    alphabet = sorted(set("".join(PHRASES)))
    rows = [[4] + [10 + alphabet.index(c) for c in text] + [3] for text in PHRASES]
    labels = torch.full((4, max(map(len, rows))), -100)
    for row, ids in enumerate(rows):
        labels[row, : len(ids)] = torch.tensor(ids)
    torch.manual_seed(0)
    config = TouchASPConfig(**tiny_config_kwargs(vocab_size=64, label_smoothing=0.0))
    model = TouchASPForConditionalGeneration(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(150):
        loss = model(**batch, labels=labels, elastic_step=step).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_ctc_leaves_out_rows_without_a_known_transcript(model):
    """A row that ends at <|transcribe|> (text unknown) must not teach CTC that nothing was said."""
    torch.manual_seed(0)
    ctc_logits = torch.randn(2, 20, model.config.vocab_size)
    labels = torch.tensor([[4, 7, 8, 3], [4, -100, -100, -100]])
    both = model.ctc_loss(ctc_logits, None, labels)
    first_alone = model.ctc_loss(ctc_logits[:1], None, labels[:1])
    torch.testing.assert_close(both, first_alone)
    empty_transcript = model.ctc_loss(ctc_logits, None, torch.tensor([[4, 7, 8, 3], [4, 3, -100, -100]]))
    assert not torch.allclose(empty_transcript, first_alone)


def test_task_loss_weight_weights_the_tokens_before_transcribe(model):
    """Weight 1 is the plain mean cross-entropy; weight w counts each task token w times."""
    torch.manual_seed(0)
    config = model.config
    logits = torch.randn(2, 6, config.vocab_size)
    t = config.transcribe_token_id
    labels = torch.tensor([[9, -100, 11, t, 20, 21], [9, 10, t, 22, -100, -100]])
    plain = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                            label_smoothing=config.label_smoothing)
    torch.testing.assert_close(model.attention_loss(logits, labels), plain)
    per_token = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none",
                                label_smoothing=config.label_smoothing).view(2, 6)
    config.task_loss_weight = 4.0
    task = torch.tensor([[1, 0, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    taught = labels != -100
    expected = (4 * per_token[task].sum() + per_token[~task & taught].sum()) / (4 * task.sum() + (~task & taught).sum())
    torch.testing.assert_close(model.attention_loss(logits, labels), expected)

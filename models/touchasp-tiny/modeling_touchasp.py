"""TouchASP encoder-decoder: conv2d x4 subsampling + Conformer encoder (CTC head) + Transformer decoder, every
FFN an elastic MoE. Shaped like Transformers' Whisper: one module per role."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import cached_file

from .configuration_touchasp import TouchASPConfig, check_transcript_decoding
from .ctc_touchasp import check_ctc_generation, generate_ctc_transcript
from .emoe import ElasticMoE, TouchASPExperts, TouchASPRouter
from .generation_touchasp import (
    COMPRESSION_RATIO_THRESHOLD,
    FALLBACK_TEMPERATURES,
    apply_temperature_fallback,
    uses_fallback,
)
from .ngram_touchasp import NGRAM_LM_FILE, TokenNgramLM


@dataclass
class TouchASPEncoderOutput(BaseModelOutput):
    """Encoder states plus what the decoder and the losses need: the subsampled padding mask (batch, frames),
    router logits per MoE layer (when asked) and the summed balance loss (training only, so that generate's
    beam expansion never sees a 0-dim tensor)."""

    attention_mask: torch.Tensor | None = None
    router_logits: tuple[torch.Tensor, ...] | None = None
    balance_loss: torch.Tensor | None = None


@dataclass
class TouchASPSeq2SeqModelOutput(Seq2SeqModelOutput):
    encoder_attention_mask: torch.Tensor | None = None
    encoder_router_logits: tuple[torch.Tensor, ...] | None = None
    decoder_router_logits: tuple[torch.Tensor, ...] | None = None
    balance_loss: torch.Tensor | None = None


@dataclass
class TouchASPSeq2SeqLMOutput(Seq2SeqLMOutput):
    ctc_logits: torch.Tensor | None = None
    encoder_attention_mask: torch.Tensor | None = None
    encoder_router_logits: tuple[torch.Tensor, ...] | None = None
    decoder_router_logits: tuple[torch.Tensor, ...] | None = None
    attention_loss: torch.Tensor | None = None
    ctc_loss: torch.Tensor | None = None
    balance_loss: torch.Tensor | None = None


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frame count after two kernel-3 stride-2 convolutions (10 ms -> 40 ms frames)."""
    for _ in range(2):
        lengths = torch.div(lengths - 3, 2, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


def subsampled_attention_mask(attention_mask: torch.Tensor | None, num_frames: int) -> torch.Tensor | None:
    """Feature-level mask (batch, frames) -> encoder-level mask (batch, num_frames) of bools."""
    if attention_mask is None:
        return None
    lengths = subsampled_lengths(attention_mask.sum(-1))
    return torch.arange(num_frames, device=attention_mask.device)[None, :] < lengths[:, None]


def spec_augment(features: torch.Tensor, lengths: torch.Tensor, config: TouchASPConfig) -> torch.Tensor:
    """SpecAugment time and frequency masks, drawn per utterance and applied in one vectorised pass."""
    batch, frames, bins = features.shape
    keep = torch.ones_like(features, dtype=torch.bool)
    time_axis = torch.arange(frames, device=features.device)[None, :]
    freq_axis = torch.arange(bins, device=features.device)[None, :]
    for _ in range(config.num_time_masks):
        width = torch.randint(0, config.max_time_mask + 1, (batch, 1), device=features.device)
        width = torch.minimum(width, (lengths[:, None] * 0.2).long())
        start = (torch.rand(batch, 1, device=features.device) * (lengths[:, None] - width).clamp(min=1)).long()
        keep &= ~((time_axis >= start) & (time_axis < start + width))[:, :, None]
    for _ in range(config.num_freq_masks):
        width = torch.randint(0, config.max_freq_mask + 1, (batch, 1), device=features.device)
        start = (torch.rand(batch, 1, device=features.device) * (bins - width)).long()
        keep &= ~((freq_axis >= start) & (freq_axis < start + width))[:, None, :]
    return features * keep


class TouchASPConv2dSubsampling(nn.Module):
    """Two stride-2 convolutions: 10 ms fbank frames -> 40 ms encoder frames of width d_model."""

    def __init__(self, config: TouchASPConfig):
        super().__init__()
        channels = config.subsampling_channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(), nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU()
        )
        freq = config.num_mel_bins
        for _ in range(2):
            freq = (freq - 3) // 2 + 1
        self.out = nn.Linear(channels * freq, config.d_model)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        """(batch, frames, mel) -> (batch, subsampled frames, d_model)."""
        hidden = self.conv(input_features.unsqueeze(1))
        batch, channels, time, freq = hidden.shape
        return self.out(hidden.transpose(1, 2).reshape(batch, time, channels * freq))


class TouchASPRotaryEmbedding(nn.Module):
    """Rotary positions for encoder self-attention: relative, and unbounded in audio length."""

    def __init__(self, config: TouchASPConfig):
        super().__init__()
        head_dim = config.d_model // config.encoder_attention_heads
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, num_positions: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(num_positions, device=self.inv_freq.device, dtype=torch.float)
        angles = torch.outer(positions, self.inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (batch, heads, time, head_dim) states by their positions."""
    first, second = states.chunk(2, dim=-1)
    return states * cos + torch.cat([-second, first], dim=-1) * sin


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    is_causal: bool = False,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention with a boolean mask (True = attend), or a causal one when `is_causal` and no mask is
    given (as SDPA does); returns (batch, time, heads, head_dim)."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if is_causal and attention_mask is None:
        attention_mask = torch.ones(query.size(2), key.size(2), dtype=torch.bool, device=query.device).tril()
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    weights = F.dropout(scores.softmax(dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class TouchASPAttention(nn.Module):
    """Multi-head attention for encoder self-attention (rotary), decoder self-attention (cached) and
    cross-attention (encoder K/V computed once per generation and reused from the cache)."""

    def __init__(self, config: TouchASPConfig, num_heads: int, layer_idx: int | None = None, is_causal: bool = False):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = config.d_model // num_heads
        self.scaling = self.head_dim**-0.5
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.q_proj = nn.Linear(config.d_model, config.d_model)
        self.k_proj = nn.Linear(config.d_model, config.d_model)
        self.v_proj = nn.Linear(config.d_model, config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        return states.view(states.size(0), states.size(1), self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Cache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states (batch, time, d_model); attention_mask bool, broadcastable to (batch, 1, q, kv)."""
        is_cross_attention = key_value_states is not None
        query = self._heads(self.q_proj(hidden_states))
        layer_cache, reuse = None, False
        if isinstance(cache, EncoderDecoderCache):
            if is_cross_attention:
                reuse = cache.is_updated.get(self.layer_idx, False)
                cache.is_updated[self.layer_idx] = True
                layer_cache = cache.cross_attention_cache
            else:
                layer_cache = cache.self_attention_cache
        if reuse:
            key, value = layer_cache.layers[self.layer_idx].keys, layer_cache.layers[self.layer_idx].values
        else:
            source = key_value_states if is_cross_attention else hidden_states
            key, value = self._heads(self.k_proj(source)), self._heads(self.v_proj(source))
            if position_embeddings is not None:
                query, key = apply_rotary(query, *position_embeddings), apply_rotary(key, *position_embeddings)
            if layer_cache is not None:
                key, value = layer_cache.update(key, value, self.layer_idx)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.config.attention_dropout if self.training else 0.0,
            is_causal=self.is_causal and attention_mask is None and query.size(2) > 1,
        )
        return self.out_proj(output.reshape(*hidden_states.shape[:-1], -1)), weights


class TouchASPConvolutionModule(nn.Module):
    """Conformer convolution: pointwise + GLU, depthwise conv, LayerNorm (padding-independent, unlike
    BatchNorm), swish, pointwise. Padded frames are zeroed right before the depthwise conv, the one step that
    mixes frames, so they never leak into valid ones (zeroed earlier, the biased pointwise conv would refill them)."""

    def __init__(self, config: TouchASPConfig):
        super().__init__()
        d_model = config.d_model
        self.pointwise_in = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise = nn.Conv1d(
            d_model, d_model, config.conv_kernel_size, padding=config.conv_kernel_size // 2, groups=d_model
        )
        self.norm = nn.LayerNorm(d_model, eps=config.layer_norm_eps)
        self.pointwise_out = nn.Conv1d(d_model, d_model, 1)

    def forward(self, hidden_states: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = F.glu(self.pointwise_in(hidden_states.transpose(1, 2)), dim=1)
        if frame_mask is not None:
            hidden = hidden.masked_fill(~frame_mask[:, None, :], 0.0)
        hidden = self.norm(self.depthwise(hidden).transpose(1, 2))
        return self.pointwise_out(F.silu(hidden).transpose(1, 2)).transpose(1, 2)


class TouchASPEncoderLayer(GradientCheckpointingLayer):
    """Macaron Conformer block: half eMoE, self-attention, convolution, half eMoE, final LayerNorm."""

    def __init__(self, config: TouchASPConfig, layer_idx: int):
        super().__init__()
        eps = config.layer_norm_eps
        self.ffn_in_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.ffn_in = ElasticMoE(config, layer_id=2 * layer_idx)
        self.self_attn_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.self_attn = TouchASPAttention(config, config.encoder_attention_heads)
        self.conv_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.conv = TouchASPConvolutionModule(config)
        self.ffn_out_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.ffn_out = ElasticMoE(config, layer_id=2 * layer_idx + 1)
        self.final_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        frame_mask: torch.Tensor | None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        num_experts_per_tok: int | None = None,
        elastic_step: int | None = None,
    ) -> tuple:
        first = self.ffn_in(self.ffn_in_norm(hidden_states), num_experts_per_tok, elastic_step, frame_mask)
        hidden_states = hidden_states + 0.5 * self.dropout(first.hidden_states)
        attended, weights = self.self_attn(
            self.self_attn_norm(hidden_states), attention_mask=attention_mask, position_embeddings=position_embeddings
        )
        hidden_states = hidden_states + self.dropout(attended)
        hidden_states = hidden_states + self.dropout(self.conv(self.conv_norm(hidden_states), frame_mask))
        second = self.ffn_out(self.ffn_out_norm(hidden_states), num_experts_per_tok, elastic_step, frame_mask)
        hidden_states = self.final_norm(hidden_states + 0.5 * self.dropout(second.hidden_states))
        return hidden_states, weights, (first, second)


class TouchASPDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm Transformer decoder block: cached causal self-attention, cross-attention, eMoE FFN."""

    def __init__(self, config: TouchASPConfig, layer_idx: int):
        super().__init__()
        eps = config.layer_norm_eps
        self.self_attn_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.self_attn = TouchASPAttention(config, config.decoder_attention_heads, layer_idx, is_causal=True)
        self.cross_attn_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.cross_attn = TouchASPAttention(config, config.decoder_attention_heads, layer_idx)
        self.ffn_norm = nn.LayerNorm(config.d_model, eps=eps)
        self.ffn = ElasticMoE(config, layer_id=2 * config.encoder_layers + layer_idx)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        self_attention_mask: torch.Tensor | None,
        cross_attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
        num_experts_per_tok: int | None = None,
        elastic_step: int | None = None,
        token_mask: torch.Tensor | None = None,
    ) -> tuple:
        attended, self_weights = self.self_attn(
            self.self_attn_norm(hidden_states), attention_mask=self_attention_mask, cache=cache
        )
        hidden_states = hidden_states + self.dropout(attended)
        attended, cross_weights = self.cross_attn(
            self.cross_attn_norm(hidden_states),
            key_value_states=encoder_hidden_states,
            attention_mask=cross_attention_mask,
            cache=cache,
        )
        hidden_states = hidden_states + self.dropout(attended)
        moe = self.ffn(self.ffn_norm(hidden_states), num_experts_per_tok, elastic_step, token_mask)
        return hidden_states + self.dropout(moe.hidden_states), (self_weights, cross_weights), moe


class TouchASPPreTrainedModel(PreTrainedModel):
    config_class = TouchASPConfig
    base_model_prefix = "model"
    main_input_name = "input_features"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["TouchASPEncoderLayer", "TouchASPDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False

    @classmethod
    def _can_set_experts_implementation(cls) -> bool:
        """The experts live in emoe.py, where Transformers' source-scanning heuristic does not look."""
        return True

    def get_correct_experts_implementation(self, requested_experts: str | None) -> str:
        """Default to our grouped "eager" dispatch, measured fastest on CPU (benchmarks/RESULTS.md); pass
        `experts_implementation="grouped_mm"` on GPUs."""
        return super().get_correct_experts_implementation(requested_experts or "eager")

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            # PyTorch's fan-in scaled default, what `reset_parameters` draws (through `init` so loaded weights are
            # left alone). N(0, initializer_range) learnt about 1.5x slower (training/README.md, "Learning speed").
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, TouchASPRouter):
            init.normal_(module.weight, std=std)
        elif isinstance(module, TouchASPExperts):
            init.normal_(module.gate_up_proj, std=std)
            init.normal_(module.down_proj, std=std)
        elif isinstance(module, TouchASPRotaryEmbedding):
            head_dim = self.config.d_model // self.config.encoder_attention_heads
            exponents = torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim
            init.copy_(module.inv_freq, 1.0 / (self.config.rope_theta**exponents))


def _collect_moe(moe_outputs: list, output_router_logits: bool) -> tuple[tuple | None, torch.Tensor | None]:
    """Router logits (when asked) and the summed balance loss of a stack's MoE layers."""
    logits = tuple(moe.router_logits for moe in moe_outputs) if output_router_logits else None
    losses = [moe.balance_loss for moe in moe_outputs if moe.balance_loss is not None]
    return logits, (torch.stack(losses).sum() if losses else None)


class TouchASPEncoder(TouchASPPreTrainedModel):
    """fbank (batch, frames, mel) -> subsampling -> Conformer blocks -> (batch, frames / 4, d_model)."""

    def __init__(self, config: TouchASPConfig):
        super().__init__(config)
        self.subsampling = TouchASPConv2dSubsampling(config)
        self.rotary = TouchASPRotaryEmbedding(config)
        self.layers = nn.ModuleList(TouchASPEncoderLayer(config, i) for i in range(config.encoder_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        num_experts_per_tok: int | None = None,
        elastic_step: int | None = None,
        output_router_logits: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> TouchASPEncoderOutput:
        if input_features.dim() != 3 or input_features.size(-1) != self.config.num_mel_bins:
            raise ValueError(
                f"input_features must be (batch, frames, {self.config.num_mel_bins}), got {tuple(input_features.shape)}"
            )
        if input_features.size(1) < 7:
            raise ValueError(f"input_features need at least 7 frames (85 ms of audio), got {input_features.size(1)}")
        if self.training and self.config.apply_spec_augment:
            lengths = attention_mask.sum(-1) if attention_mask is not None else torch.full(
                (input_features.size(0),), input_features.size(1), device=input_features.device
            )
            input_features = spec_augment(input_features, lengths, self.config)
        hidden_states = self.dropout(self.subsampling(input_features))
        frame_mask = subsampled_attention_mask(attention_mask, hidden_states.size(1))
        key_mask = frame_mask[:, None, None, :] if frame_mask is not None else None
        position_embeddings = self.rotary(hidden_states.size(1), hidden_states.dtype)
        all_hidden, all_attentions, moe_outputs = [], [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, weights, moes = layer(
                hidden_states, key_mask, frame_mask, position_embeddings, num_experts_per_tok, elastic_step
            )
            all_attentions.append(weights)
            moe_outputs.extend(moes)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        router_logits, balance_loss = _collect_moe(moe_outputs, output_router_logits)
        return TouchASPEncoderOutput(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
            attention_mask=frame_mask,
            router_logits=router_logits,
            balance_loss=balance_loss,
        )


class TouchASPDecoder(TouchASPPreTrainedModel):
    """Token ids (batch, tokens) + encoder states -> (batch, tokens, d_model), with a Transformers KV cache."""

    def __init__(self, config: TouchASPConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.layers = nn.ModuleList(TouchASPDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool = False,
        num_experts_per_tok: int | None = None,
        elastic_step: int | None = None,
        output_router_logits: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple:
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        if cache is not None and not isinstance(cache.self_attention_cache, DynamicCache):
            # A preallocated cache returns every slot, empty ones too, and the one-token steps take no mask.
            raise ValueError(
                f"TouchASP decodes with a dynamic cache only, not {type(cache.self_attention_cache).__name__} "
                "(leave cache_implementation unset)"
            )
        past = cache.get_seq_length() if cache is not None else 0
        length = input_ids.size(1)
        if past + length > self.config.max_target_positions:
            raise ValueError(
                f"decoder sequence of {past + length} tokens exceeds max_target_positions="
                f"{self.config.max_target_positions}; lower max_new_tokens or chunk the audio."
            )
        positions = torch.arange(past, past + length, device=input_ids.device)
        hidden_states = self.dropout(self.embed_tokens(input_ids) + self.embed_positions(positions))
        self_mask = None
        if past > 0 and length > 1:
            key_positions = torch.arange(past + length, device=input_ids.device)
            self_mask = (key_positions[None, :] <= positions[:, None])[None, None]
        cross_mask = encoder_attention_mask[:, None, None, :] if encoder_attention_mask is not None else None
        token_mask = input_ids != self.config.pad_token_id  # padded label positions are fed <pad>
        all_hidden, all_attentions, moe_outputs = [], [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, weights, moe = layer(
                hidden_states, encoder_hidden_states, self_mask, cross_mask, cache, num_experts_per_tok, elastic_step,
                token_mask,
            )
            all_attentions.append(weights)
            moe_outputs.append(moe)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        router_logits, balance_loss = _collect_moe(moe_outputs, output_router_logits)
        return (
            hidden_states,
            cache if use_cache else None,
            tuple(all_hidden) if output_hidden_states else None,
            all_attentions if output_attentions else None,
            router_logits,
            balance_loss,
        )


class TouchASPModel(TouchASPPreTrainedModel):
    """Encoder + decoder. In training, each forward without an explicit `elastic_step` uses an internal step
    counter; a training loop that resumes should pass its global step so the k draws resume exactly."""

    def __init__(self, config: TouchASPConfig):
        super().__init__(config)
        self.encoder = TouchASPEncoder(config)
        self.decoder = TouchASPDecoder(config)
        self.elastic_step = 0
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> TouchASPEncoder:
        return self.encoder

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        encoder_outputs: TouchASPEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        num_experts_per_tok: int | None = None,
        elastic_step: int | None = None,
        output_router_logits: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
        **kwargs,
    ) -> TouchASPSeq2SeqModelOutput:
        cache = cache if cache is not None else kwargs.pop("past_key_values", None)
        if self.training and elastic_step is None:
            elastic_step = self.elastic_step
            self.elastic_step += 1
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_features, attention_mask, num_experts_per_tok, elastic_step, output_router_logits,
                output_attentions, output_hidden_states,
            )
        elif not isinstance(encoder_outputs, TouchASPEncoderOutput):
            encoder_outputs = TouchASPEncoderOutput(last_hidden_state=encoder_outputs[0])
        encoder_states = encoder_outputs.last_hidden_state
        encoder_mask = encoder_outputs.attention_mask
        if encoder_mask is None and attention_mask is not None:
            encoder_mask = subsampled_attention_mask(attention_mask, encoder_states.size(1))
        hidden, cache, dec_hidden, dec_attentions, dec_router_logits, dec_balance = self.decoder(
            decoder_input_ids, encoder_states, encoder_mask, cache, bool(use_cache), num_experts_per_tok,
            elastic_step, output_router_logits, output_attentions, output_hidden_states,
        )
        balances = [loss for loss in (encoder_outputs.balance_loss, dec_balance) if loss is not None]
        return TouchASPSeq2SeqModelOutput(
            last_hidden_state=hidden,
            cache=cache,
            decoder_hidden_states=dec_hidden,
            decoder_attentions=tuple(w[0] for w in dec_attentions) if dec_attentions else None,
            cross_attentions=tuple(w[1] for w in dec_attentions) if dec_attentions else None,
            encoder_last_hidden_state=encoder_states,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            encoder_attention_mask=encoder_mask,
            encoder_router_logits=encoder_outputs.router_logits,
            decoder_router_logits=dec_router_logits,
            balance_loss=sum(balances) if balances else None,
        )

    def prune_experts(self, pool: int) -> None:
        """Keep only the first `pool` routed experts in every MoE layer (memory elasticity); the pruned model
        equals this one with routing restricted to that pool."""
        if not 1 <= pool <= self.config.n_routed_experts:
            raise ValueError(f"pool must lie in 1..n_routed_experts={self.config.n_routed_experts}, got {pool}")
        for module in self.modules():
            if isinstance(module, ElasticMoE):
                module.prune_experts(pool)
        config = self.config
        config.n_routed_experts = pool
        config.expert_pool_size = None
        config.elastic_k_choices, config.elastic_k_probs = _restrict_k(config, pool)
        config.num_experts_per_tok = min(config.num_experts_per_tok, pool)
        if config.elastic_expert_pools:
            config.elastic_expert_pools = [p for p in config.elastic_expert_pools if p <= pool] or None


def _restrict_k(config: TouchASPConfig, pool: int) -> tuple[list[int], list[float]]:
    """Elastic k choices that still fit a pruned pool, probabilities renormalised."""
    kept = [(k, p) for k, p in zip(config.elastic_k_choices, config.elastic_k_probs) if k <= pool]
    total = sum(p for _, p in kept)
    return [k for k, _ in kept], [p / total for _, p in kept]


class TouchASPForConditionalGeneration(TouchASPPreTrainedModel, GenerationMixin):
    """The ASR/perception model: `labels` give label-smoothed CE + ctc_weight * CTC + balance loss;
    `generate(input_features, attention_mask=..., num_experts_per_tok=k)` decodes greedy or beam; a greedy
    transcript that loops is decoded again by sampling (`generation_touchasp`), or the CTC head writes the
    transcript (`transcript_decoding="ctc"`, `ctc_touchasp`)."""

    _tied_weights_keys = {"proj_out.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: TouchASPConfig):
        super().__init__(config)
        self.model = TouchASPModel(config)
        self.proj_out = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.ctc_head = nn.Linear(config.d_model, config.vocab_size)
        self.ngram_lm: TokenNgramLM | None = None  # the CTC beam search's language model, saved beside the weights
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, plus the folder's `ngram_lm.safetensors` when it has one."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        hub_options = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
        path = cached_file(
            pretrained_model_name_or_path, NGRAM_LM_FILE, _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,  # optional: offline without it, the model still loads
            **{key: kwargs[key] for key in hub_options if key in kwargs},
        )
        model.ngram_lm = TokenNgramLM.from_file(path) if path else None
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.ngram_lm is not None and kwargs.get("is_main_process", True):
            self.ngram_lm.save_pretrained(save_directory)

    def get_encoder(self, modality: str | None = None) -> TouchASPEncoder:
        return self.model.encoder

    def get_output_embeddings(self) -> nn.Linear:
        return self.proj_out

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.proj_out = value

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        encoder_outputs: TouchASPEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        num_experts_per_tok: int | None = None,
        elastic_step: int | None = None,
        output_router_logits: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
        **kwargs,
    ) -> TouchASPSeq2SeqLMOutput:
        """input_features (batch, frames, mel), attention_mask (batch, frames), labels (batch, tokens) with -100
        where the loss is masked; decoder_input_ids default to labels shifted right after `<|sot|>`."""
        cache = cache if cache is not None else kwargs.pop("past_key_values", None)
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
        outputs = self.model(
            input_features, attention_mask, decoder_input_ids, encoder_outputs, cache, use_cache,
            num_experts_per_tok, elastic_step, output_router_logits, output_attentions, output_hidden_states,
        )
        logits = self.proj_out(outputs.last_hidden_state)
        ctc_logits = self.ctc_head(outputs.encoder_last_hidden_state) if labels is not None else None
        loss = attention_loss = ctc_loss = None
        if labels is not None:
            attention_loss = self.attention_loss(logits, labels)
            ctc_loss = self.ctc_loss(ctc_logits, outputs.encoder_attention_mask, labels)
            loss = (1 - self.config.ctc_weight) * attention_loss + self.config.ctc_weight * ctc_loss
            if outputs.balance_loss is not None:
                loss = loss + self.config.router_aux_loss_coef * outputs.balance_loss
        return TouchASPSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            ctc_logits=ctc_logits,
            encoder_attention_mask=outputs.encoder_attention_mask,
            encoder_router_logits=outputs.encoder_router_logits,
            decoder_router_logits=outputs.decoder_router_logits,
            attention_loss=attention_loss,
            ctc_loss=ctc_loss,
            balance_loss=outputs.balance_loss,
        )

    def generate(
        self,
        input_features: torch.Tensor | None = None,
        compression_ratio_threshold: float | None = COMPRESSION_RATIO_THRESHOLD,
        fallback_temperatures: Sequence[float] = FALLBACK_TEMPERATURES,
        transcript_decoding: str | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate`, then Whisper's temperature fallback for each greedy row whose transcript
        compresses better than `compression_ratio_threshold` (None: off); see `apply_temperature_fallback`.
        `transcript_decoding` "ctc" (default: the config's) has the CTC head write the transcript instead, which
        needs no fallback; see `generate_ctc_transcript`."""
        if input_features is None:
            input_features = kwargs.pop("inputs", None)
        if check_transcript_decoding(transcript_decoding or self.config.transcript_decoding) == "ctc":
            generation_config, _ = self._prepare_generation_config(kwargs.get("generation_config"), **{
                key: value for key, value in kwargs.items() if key != "generation_config"
            })
            check_ctc_generation(generation_config)
            kwargs["num_beams"] = 1  # the task tokens stay greedy; num_beams widens the CTC transcript's search
            return generate_ctc_transcript(
                super().generate, self.get_encoder(), self.ctc_head, self.config, input_features,
                beam_size=generation_config.num_beams or 1, lm=self.ngram_lm, **kwargs,
            )
        output = super().generate(input_features, **kwargs)
        # As generate resolved it: a passed config's unset fields come from the model's generation_config.
        generation_config, model_kwargs = self._prepare_generation_config(
            kwargs.pop("generation_config", None), **kwargs
        )
        model_kwargs["input_features"] = input_features
        if not uses_fallback(generation_config, compression_ratio_threshold, model_kwargs):
            return output
        return apply_temperature_fallback(
            super().generate, output, generation_config, model_kwargs, self.config, compression_ratio_threshold,
            fallback_temperatures,
        )

    def attention_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Label-smoothed cross-entropy, a weighted mean over taught tokens: `task_loss_weight` for the task tokens
        (those before `<|transcribe|>`), 1 for the rest."""
        per_token = F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="none",
            label_smoothing=self.config.label_smoothing,
        ).view_as(labels)
        is_task = (labels == self.config.transcribe_token_id).cumsum(1) == 0
        weights = torch.where(is_task, self.config.task_loss_weight, 1.0) * (labels != -100)
        return (per_token * weights).sum() / weights.sum().clamp(min=1e-6)

    def ctc_loss(self, ctc_logits: torch.Tensor, frame_mask: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
        """CTC over the transcript tokens only: those after `<|transcribe|>` (all tokens when a row has none),
        minus end-of-text, padding and masked positions. Blank is the pad id. Rows without `<|eot|>` have no
        known transcript (the processor ends them at `<|transcribe|>`) and are left out, so that a missing
        transcript never teaches "nothing was said"."""
        config = self.config
        is_transcribe = labels == config.transcribe_token_id
        after = torch.where(is_transcribe.any(1, keepdim=True), is_transcribe.cumsum(1) > 0, True) & ~is_transcribe
        keep = after & (labels >= 0) & (labels != config.eos_token_id) & (labels != config.pad_token_id)
        known = (labels == config.eos_token_id).any(-1)
        input_lengths = (
            frame_mask.sum(-1) if frame_mask is not None
            else torch.full((labels.size(0),), ctc_logits.size(1), device=labels.device)
        )
        log_probs = ctc_logits.float().log_softmax(-1).transpose(0, 1)
        target_lengths = keep.sum(-1)
        per_row = F.ctc_loss(
            log_probs, labels[keep], input_lengths, target_lengths, blank=config.pad_token_id,
            reduction="none", zero_infinity=True,
        )
        per_token = per_row / target_lengths.clamp(min=1)
        return (per_token * known).sum() / known.sum().clamp(min=1)

    def num_active_parameters(self, num_experts_per_tok: int | None = None) -> int:
        """Parameters one token touches at k active routed experts: everything but the idle routed experts."""
        k = num_experts_per_tok or self.config.num_experts_per_tok
        total = sum(p.numel() for p in self.parameters())
        for module in self.modules():
            if isinstance(module, TouchASPExperts):
                per_expert = (module.gate_up_proj.numel() + module.down_proj.numel()) // module.num_experts
                total -= per_expert * (module.num_experts - min(k, module.num_experts))
        return total

    def prune_experts(self, pool: int) -> None:
        """See `TouchASPModel.prune_experts`; save_pretrained afterwards writes the smaller checkpoint."""
        self.model.prune_experts(pool)


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher-forcing inputs: `<|sot|>` then labels[:-1], masked (-100) positions fed as padding."""
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


__all__ = ["TouchASPModel", "TouchASPForConditionalGeneration", "TouchASPPreTrainedModel", "TouchASPEncoder"]


# The ASR pipeline runs a model as seq2seq only when its class name is in this static dict, which
# `AutoModelForSpeechSeq2Seq.register()` does not update; without this entry it would treat TouchASP as CTC.
# At import time, so that remote-code loading gets it too (STACK.md 2b).
try:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES as _S2S

    _S2S.setdefault(TouchASPConfig.model_type, "TouchASPForConditionalGeneration")
except ImportError:
    pass

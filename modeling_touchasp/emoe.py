"""Elastic mixture of experts (eMoE): DeepSeekMoE-style shared + fine-grained routed experts whose active count k
is drawn at every training step, so one trained model serves any k from 1 to k_max (DESIGN.md section 3)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.integrations.moe import use_experts_implementation

from .configuration_touchasp import TouchASPConfig


class ElasticChoice(NamedTuple):
    """What one MoE layer uses for one step: k active routed experts among the first `pool` ones."""

    k: int
    pool: int


def draw_elastic_choice(config: TouchASPConfig, step: int, layer_id: int) -> ElasticChoice:
    """Draw (k, pool) from (elastic_seed, step, layer) only, so every data-parallel rank and every gradient
    checkpointing replay of the layer draws the same values without any communication."""
    scope_id = layer_id if config.elastic_sample_scope == "layer" else 0
    rng = np.random.default_rng([config.elastic_seed, step, scope_id])
    k = int(rng.choice(config.elastic_k_choices, p=config.elastic_k_probs))
    pool = int(rng.choice(config.elastic_expert_pools)) if config.elastic_expert_pools else config.n_routed_experts
    return ElasticChoice(min(k, pool), pool)


class TouchASPRouter(nn.Module):
    """Bias-free linear router; gates are the softmax over the selected k logits (renormalised by default)."""

    def __init__(self, config: TouchASPConfig):
        super().__init__()
        self.norm_topk_prob = config.norm_topk_prob
        self.weight = nn.Parameter(torch.empty(config.n_routed_experts, config.d_model))

    def forward(self, hidden_states: torch.Tensor, choice: ElasticChoice) -> tuple[torch.Tensor, ...]:
        """hidden_states (tokens, d_model) -> router_logits (tokens, N), top_k_weights and top_k_index (tokens, k)."""
        router_logits = F.linear(hidden_states, self.weight)
        pooled_logits = router_logits[:, : choice.pool]
        top_k_logits, top_k_index = pooled_logits.topk(choice.k, dim=-1)
        if self.norm_topk_prob:
            top_k_weights = top_k_logits.float().softmax(dim=-1)
        else:
            top_k_weights = pooled_logits.float().softmax(dim=-1).gather(1, top_k_index)
        return router_logits, top_k_weights.to(hidden_states.dtype), top_k_index


@use_experts_implementation
class TouchASPExperts(nn.Module):
    """N fine-grained SwiGLU experts stored as 3-D tensors, the layout of Transformers' experts interface, so
    `experts_implementation` ("eager", "batched_mm", "grouped_mm") picks the dispatch kernel."""

    def __init__(self, config: TouchASPConfig):
        super().__init__()
        self.num_experts = config.n_routed_experts
        self.gate_up_proj = nn.Parameter(
            torch.empty(config.n_routed_experts, 2 * config.moe_intermediate_size, config.d_model)
        )
        self.down_proj = nn.Parameter(torch.empty(config.n_routed_experts, config.d_model, config.moe_intermediate_size))
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        """Eager grouped dispatch: sort the (token, expert) pairs by expert and run each expert once on its
        contiguous slice, so the work is tokens * k expert calls, whatever N is."""
        num_top_k = top_k_index.size(-1)
        expert_ids = top_k_index.reshape(-1)
        order = torch.argsort(expert_ids, stable=True)
        token_ids = order // num_top_k
        tokens_per_expert = torch.bincount(expert_ids, minlength=self.num_experts).tolist()
        grouped_states = hidden_states[token_ids].split(tokens_per_expert)
        outputs = []
        for expert, states in enumerate(grouped_states):
            if states.numel() == 0:
                continue
            gate, up = F.linear(states, self.gate_up_proj[expert]).chunk(2, dim=-1)
            outputs.append(F.linear(self.act_fn(gate) * up, self.down_proj[expert]))
        weighted = torch.cat(outputs) * top_k_weights.reshape(-1)[order, None]
        return torch.zeros_like(hidden_states).index_add_(0, token_ids, weighted)


class TouchASPSharedExperts(nn.Module):
    """The S always-on experts, fused into one SwiGLU of width S * moe_intermediate_size."""

    def __init__(self, config: TouchASPConfig):
        super().__init__()
        width = config.n_shared_experts * config.moe_intermediate_size
        self.gate_up_proj = nn.Linear(config.d_model, 2 * width, bias=False)
        self.down_proj = nn.Linear(width, config.d_model, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(hidden_states).chunk(2, dim=-1)
        return self.down_proj(self.act_fn(gate) * up)


class EMoEOutput(NamedTuple):
    hidden_states: torch.Tensor
    router_logits: torch.Tensor
    balance_loss: torch.Tensor | None


class ElasticMoE(nn.Module):
    """y = sum_j Shared_j(u) + sum_{i in TopK(r, k)} g_i Routed_i(u): the FFN of every encoder and decoder block.

    Training draws (k, pool) per step with `draw_elastic_choice`; evaluation uses `num_experts_per_tok`
    (per call, else the config's) and never samples.
    """

    def __init__(self, config: TouchASPConfig, layer_id: int):
        super().__init__()
        self.config = config
        self.layer_id = layer_id
        self.router = TouchASPRouter(config)
        self.experts = TouchASPExperts(config)
        self.shared_experts = TouchASPSharedExperts(config) if config.n_shared_experts > 0 else None

    def elastic_choice(self, num_experts_per_tok: int | None, elastic_step: int | None) -> ElasticChoice:
        """The per-call k wins; else training draws from (seed, step, layer) and evaluation uses the config."""
        pool = self.config.expert_pool_size or self.config.n_routed_experts
        if num_experts_per_tok is not None:
            if not 1 <= num_experts_per_tok <= pool:
                raise ValueError(f"num_experts_per_tok must lie in 1..{pool} (routed experts), got {num_experts_per_tok}.")
            return ElasticChoice(num_experts_per_tok, pool)
        if self.training and elastic_step is not None:
            return draw_elastic_choice(self.config, elastic_step, self.layer_id)
        k = self.config.num_experts_per_tok  # may be set after __init__, e.g. by from_pretrained(..., k=...)
        if not 1 <= k <= self.config.n_routed_experts:
            raise ValueError(
                f"config.num_experts_per_tok must lie in 1..{self.config.n_routed_experts} (routed experts), got {k}."
            )
        return ElasticChoice(min(k, pool), pool)

    def forward(
        self,
        hidden_states: torch.Tensor,
        num_experts_per_tok: int | None = None,
        elastic_step: int | None = None,
        token_mask: torch.Tensor | None = None,
    ) -> EMoEOutput:
        """hidden_states (batch, time, d_model) -> EMoEOutput with router_logits (batch * time, N). The balance
        loss counts only the tokens of `token_mask` (batch, time) (all when None): padding is not load."""
        choice = self.elastic_choice(num_experts_per_tok, elastic_step)
        shape = hidden_states.shape
        flat = hidden_states.reshape(-1, shape[-1])
        router_logits, top_k_weights, top_k_index = self.router(flat, choice)
        output = self.experts(flat, top_k_index, top_k_weights)
        if self.shared_experts is not None:
            output = output + self.shared_experts(flat)
        balance_loss = None
        if self.training and self.config.router_aux_loss_coef > 0:
            logits, index = router_logits[:, : choice.pool], top_k_index
            if token_mask is not None:
                keep = token_mask.reshape(-1)
                logits, index = logits[keep], index[keep]
            balance_loss = expert_balance_loss(logits, index, choice)
        return EMoEOutput(output.view(shape), router_logits, balance_loss)

    def prune_experts(self, pool: int) -> None:
        """Keep only the first `pool` routed experts (the nested pool trained with `elastic_expert_pools`)."""
        self.router.weight = nn.Parameter(self.router.weight.data[:pool].clone())
        self.experts.gate_up_proj = nn.Parameter(self.experts.gate_up_proj.data[:pool].clone())
        self.experts.down_proj = nn.Parameter(self.experts.down_proj.data[:pool].clone())
        self.experts.num_experts = pool


def expert_balance_loss(router_logits: torch.Tensor, top_k_index: torch.Tensor, choice: ElasticChoice) -> torch.Tensor:
    """DeepSeekMoE expert-level balance loss sum_i f_i * P_i, with f_i = pool / (k T) * tokens routed to i and
    P_i the mean router probability of i; it is 1 when the load is uniform."""
    probs = router_logits.float().softmax(dim=-1)
    counts = torch.bincount(top_k_index.reshape(-1), minlength=choice.pool).float()
    load = counts * choice.pool / (choice.k * router_logits.size(0))
    return (load * probs.mean(dim=0)).sum()

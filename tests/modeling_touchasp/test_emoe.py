"""eMoE layer: exactness against a brute-force reference, grouped dispatch cost, elastic k draws, pruning."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from modeling_touchasp import TouchASPConfig, TouchASPForConditionalGeneration
from modeling_touchasp.emoe import ElasticMoE, TouchASPRouter, draw_elastic_choice
from tests.conftest import tiny_config_kwargs


def make_layer(implementation: str = "eager", **overrides) -> ElasticMoE:
    config = TouchASPConfig(**tiny_config_kwargs(**overrides))
    config._experts_implementation = implementation
    torch.manual_seed(0)
    layer = ElasticMoE(config, layer_id=0).eval()
    for parameter in layer.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    return layer


def brute_force(layer: ElasticMoE, hidden: torch.Tensor, k: int) -> torch.Tensor:
    """Every expert on every token, weighted by the renormalised top-k gates (zero outside the top k)."""
    logits = hidden @ layer.router.weight.T
    top_logits, top_index = logits.topk(k, dim=-1)
    gates = torch.zeros_like(logits).scatter(1, top_index, top_logits.softmax(-1))
    output = layer.shared_experts(hidden)
    for expert in range(layer.config.n_routed_experts):
        gate, up = F.linear(hidden, layer.experts.gate_up_proj[expert]).chunk(2, dim=-1)
        output = output + gates[:, expert : expert + 1] * F.linear(F.silu(gate) * up, layer.experts.down_proj[expert])
    return output


@pytest.mark.parametrize("implementation", ["eager", "grouped_mm", "batched_mm"])
@pytest.mark.parametrize("k", [8, 3, 1])
def test_emoe_matches_brute_force_reference(implementation, k):
    layer = make_layer(implementation)
    hidden = torch.randn(50, layer.config.d_model)
    with torch.no_grad():
        output = layer(hidden[None], num_experts_per_tok=k).hidden_states[0]
        expected = brute_force(layer, hidden, k)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)


def test_only_top_k_experts_contribute():
    layer = make_layer()
    hidden = torch.randn(3, layer.config.d_model)  # 3 tokens x k=2 leave at least 2 of 8 experts idle
    with torch.no_grad():
        selected = layer.router(hidden, layer.elastic_choice(2, None))[2]
        unused = sorted(set(range(layer.config.n_routed_experts)) - set(selected.flatten().tolist()))
        before = layer(hidden[None], num_experts_per_tok=2).hidden_states
        layer.experts.gate_up_proj[unused] = 100.0
        after = layer(hidden[None], num_experts_per_tok=2).hidden_states
    torch.testing.assert_close(before, after)


def expert_flops(layer: ElasticMoE, hidden: torch.Tensor, k: int) -> int:
    """Floating-point operations of the routed experts alone (router and shared experts excluded)."""
    with torch.no_grad():
        weights, index = layer.router(hidden, layer.elastic_choice(k, None))[1:]
        with FlopCounterMode(display=False) as counter:
            layer.experts(hidden, index, weights)
    return counter.get_total_flops()


def test_dispatched_work_grows_with_k_not_with_n():
    hidden = torch.randn(64, 64)
    small, large = make_layer(n_routed_experts=8), make_layer(n_routed_experts=32)
    flops = {(n, k): expert_flops(layer, hidden, k) for n, layer in ((8, small), (32, large)) for k in (1, 2, 4)}
    per_pair = 2 * 64 * 3 * 32  # (gate, up, down) matmuls of one token through one expert, 2 flops per MAC
    for k in (1, 2, 4):
        assert flops[(8, k)] == flops[(32, k)] == 64 * k * per_pair


def test_elastic_draws_follow_probabilities():
    config = TouchASPConfig(**tiny_config_kwargs(elastic_k_choices=[1, 2, 3, 4], elastic_k_probs=[0.1, 0.2, 0.3, 0.4]))
    steps = 2000
    counts = torch.zeros(4)
    for step in range(steps):
        counts[draw_elastic_choice(config, step, layer_id=3).k - 1] += 1
    expected = torch.tensor(config.elastic_k_probs) * steps
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 16.27, f"chi-square {chi_square:.1f} with 3 dof exceeds the p=0.001 critical value"


def routed_k_per_layer(model: TouchASPForConditionalGeneration, run) -> list[int]:
    """The k every router used during `run()`, in module order."""
    seen = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, output: seen.append(output[2].shape[1]))
        for module in model.modules()
        if isinstance(module, TouchASPRouter)
    ]
    run()
    for hook in hooks:
        hook.remove()
    return seen


def test_model_copies_draw_identical_k_and_eval_never_samples(tiny_config):
    torch.manual_seed(0)
    first = TouchASPForConditionalGeneration(tiny_config).train()
    second = TouchASPForConditionalGeneration(copy.deepcopy(tiny_config)).train()
    features = torch.randn(1, 60, 80)
    labels = torch.tensor([[7, 8, 9, 3]])
    draws = []
    for model in (first, second):
        draws.append([routed_k_per_layer(model, lambda m=model: m(features, labels=labels)) for _ in range(30)])
    assert draws[0] == draws[1]
    assert len({k for step in draws[0] for k in step}) > 1, "k never varied over 30 steps"
    first.eval()
    with torch.no_grad():
        eval_draws = routed_k_per_layer(first, lambda: first(features, labels=labels, elastic_step=5))
    assert set(eval_draws) == {tiny_config.num_experts_per_tok}


def test_batch_scope_draws_one_k_per_step():
    config = TouchASPConfig(**tiny_config_kwargs(elastic_sample_scope="batch"))
    for step in range(50):
        assert len({draw_elastic_choice(config, step, layer).k for layer in range(6)}) == 1


def test_prune_experts_equals_pool_restricted_routing(tiny_config):
    tiny_config.elastic_expert_pools = [4, 8]
    torch.manual_seed(0)
    model = TouchASPForConditionalGeneration(tiny_config).eval()
    pruned = copy.deepcopy(model)
    pruned.prune_experts(4)
    model.config.expert_pool_size = 4
    features, decoder_input_ids = torch.randn(2, 80, 80), torch.tensor([[2, 7, 8], [2, 9, 10]])
    with torch.no_grad():
        expected = model(features, decoder_input_ids=decoder_input_ids).logits
        actual = pruned(features, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert pruned.num_parameters() < model.num_parameters()
    assert pruned.config.n_routed_experts == 4 and pruned.config.elastic_expert_pools == [4]


def test_balance_loss_is_reported_when_enabled(tiny_config):
    tiny_config.router_aux_loss_coef = 0.01
    model = TouchASPForConditionalGeneration(tiny_config).train()
    output = model(torch.randn(2, 60, 80), labels=torch.tensor([[7, 8, 3], [9, 3, -100]]))
    assert output.balance_loss is not None and torch.isfinite(output.balance_loss) and output.balance_loss > 0
    output.loss.backward()
    assert model.model.encoder.layers[0].ffn_in.router.weight.grad is not None


def test_active_parameters_grow_by_one_expert_per_layer_per_k(tiny_config):
    model = TouchASPForConditionalGeneration(tiny_config)
    moe_layers = sum(isinstance(module, ElasticMoE) for module in model.modules())
    per_expert = 3 * tiny_config.d_model * tiny_config.moe_intermediate_size
    assert model.num_active_parameters(2) - model.num_active_parameters(1) == moe_layers * per_expert
    assert model.num_active_parameters(tiny_config.n_routed_experts) == model.num_parameters()


def test_balance_loss_counts_only_real_tokens():
    layer = make_layer(router_aux_loss_coef=0.01).train()
    hidden = torch.randn(2, 10, 64)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    loss = layer(hidden, num_experts_per_tok=2, token_mask=mask).balance_loss
    padding_changed = hidden.clone()
    padding_changed[1, 6:] = 10 * torch.randn(4, 64)
    torch.testing.assert_close(layer(padding_changed, num_experts_per_tok=2, token_mask=mask).balance_loss, loss)
    torch.testing.assert_close(layer(hidden[mask][None], num_experts_per_tok=2).balance_loss, loss)

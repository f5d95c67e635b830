"""eMoE layer speed on CPU: ms per forward at k = 1, 2, 4, 8 for each experts implementation, against a dense
SwiGLU of the same active width and Transformers' DeepseekV3MoE at the same shapes.

    python benchmarks/bench_emoe.py [--threads 2] [--tokens 2000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

from modeling_touchasp import TouchASPConfig
from modeling_touchasp.emoe import ElasticMoE, TouchASPSharedExperts

D_MODEL, WIDTH, N_EXPERTS, N_SHARED = 256, 256, 16, 1
KS = (1, 2, 4, 8)
IMPLEMENTATIONS = ("eager", "grouped_mm")  # batched_mm copies one weight matrix per token: 100x slower here


def time_ms(module: torch.nn.Module, inputs: torch.Tensor, repeats: int) -> float:
    """Best wall time of one no-grad forward after warm-up: the least disturbed by other load on a shared machine."""
    with torch.no_grad():
        for _ in range(3):
            module(inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(inputs)
            times.append(time.perf_counter() - start)
    return min(times) * 1000


def emoe(k: int, implementation: str) -> ElasticMoE:
    config = TouchASPConfig(
        d_model=D_MODEL, moe_intermediate_size=WIDTH, n_routed_experts=N_EXPERTS, n_shared_experts=N_SHARED,
        num_experts_per_tok=k, elastic_k_choices=list(KS),
    )
    config._experts_implementation = implementation
    layer = ElasticMoE(config, layer_id=0).eval()
    for parameter in layer.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    return layer


def dense(k: int) -> TouchASPSharedExperts:
    """A plain SwiGLU whose width equals the eMoE's active width (shared + k routed experts)."""
    config = TouchASPConfig(d_model=D_MODEL, moe_intermediate_size=WIDTH, n_shared_experts=N_SHARED + k)
    return TouchASPSharedExperts(config).eval()


def deepseek(k: int, implementation: str) -> DeepseekV3MoE:
    config = DeepseekV3Config(
        hidden_size=D_MODEL, moe_intermediate_size=WIDTH, n_routed_experts=N_EXPERTS, n_shared_experts=N_SHARED,
        num_experts_per_tok=k, n_group=1, topk_group=1,
    )
    config._experts_implementation = implementation
    layer = DeepseekV3MoE(config).eval()
    for parameter in layer.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    return layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    inputs = torch.randn(1, args.tokens, D_MODEL)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"{args.tokens} tokens, d_model {D_MODEL}, expert width {WIDTH}, N={N_EXPERTS}, shared={N_SHARED}")
    header = ["k", "dense SwiGLU", *(f"eMoE {name}" for name in IMPLEMENTATIONS),
              "DeepseekV3MoE eager", "DeepseekV3MoE grouped_mm", "best eMoE / dense", "best eMoE / best DeepseekV3"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for k in KS:
        dense_ms = time_ms(dense(k), inputs, args.repeats)
        ours = [time_ms(emoe(k, name), inputs, args.repeats) for name in IMPLEMENTATIONS]
        theirs = [time_ms(deepseek(k, name), inputs, args.repeats) for name in ("eager", "grouped_mm")]
        row = [k, dense_ms, *ours, *theirs, min(ours) / dense_ms, min(ours) / min(theirs)]
        print("| " + " | ".join(f"{value:.2f}" if isinstance(value, float) else str(value) for value in row) + " |")


if __name__ == "__main__":
    main()

"""Configuration of TouchASP: a Conformer/Transformer speech seq2seq model whose FFNs are elastic MoE (eMoE)."""

from __future__ import annotations

from transformers import PretrainedConfig

TRANSCRIPT_DECODINGS = ("attention", "ctc")


def check_transcript_decoding(value: str) -> str:
    """`value` when it names a head that can write the transcript, else a ValueError naming the choices."""
    if value not in TRANSCRIPT_DECODINGS:
        raise ValueError(f"transcript_decoding={value!r}; expected one of {', '.join(TRANSCRIPT_DECODINGS)}")
    return value


class TouchASPConfig(PretrainedConfig):
    r"""
    Every knob of the model, with DeepSeek names for the mixture of experts (DESIGN.md sections 3-4).

    Front end and sizes:
        vocab_size (`int`): tokenizer size, task tokens included.
        num_mel_bins (`int`): fbank dimension of `input_features`.
        d_model (`int`): width of encoder and decoder.
        encoder_layers / decoder_layers (`int`): number of Conformer / Transformer blocks.
        encoder_attention_heads / decoder_attention_heads (`int`): heads per attention.
        subsampling_channels (`int`): channels of the conv2d x4 subsampling.
        conv_kernel_size (`int`): depthwise kernel of the Conformer convolution module (odd).
        max_target_positions (`int`): longest decoder sequence (learned positions).
        rope_theta (`float`): base of the rotary positions of the encoder (no length limit on audio).
        dropout / attention_dropout (`float`): dropout rates.

    eMoE (every FFN of encoder and decoder):
        n_routed_experts (`int`): N fine-grained routed experts per layer.
        n_shared_experts (`int`): S always-on experts per layer.
        moe_intermediate_size (`int`): width of one expert.
        num_experts_per_tok (`int`): k used at inference; defaults to k_max = max(elastic_k_choices).
        elastic_k_choices (`list[int]`): the k values drawn in training.
        elastic_k_probs (`list[float]`): their probabilities; default proportional to k (favours large k).
        elastic_sample_scope (`str`): "layer" (each MoE layer draws its own k every step) or "batch" (one k per step).
        elastic_expert_pools (`list[int]`): nested pool sizes P; a training step may route among the first P only.
        expert_pool_size (`int`): inference pool restriction (None = all routed experts); see `prune_experts`.
        elastic_seed (`int`): seed of the (seed, step, layer) draw that makes all data-parallel ranks agree.
        norm_topk_prob (`bool`): renormalise gates over the selected k.
        router_aux_loss_coef (`float`): DeepSeekMoE expert-balance loss weight.

    Training:
        ctc_weight (`float`): weight of the encoder CTC loss (CE gets 1 - ctc_weight).
        label_smoothing (`float`): of the attention cross-entropy.
        task_loss_weight (`float`): weight of the task tokens (language, emotion, gender, events) in the attention
            cross-entropy against 1 for the transcript's; a row has a handful of them and dozens of text tokens.
        apply_spec_augment (`bool`) with num_time_masks, max_time_mask, num_freq_masks, max_freq_mask.
        initializer_range (`float`): std of the normal init of embeddings, router and experts; Linear and Conv
            layers start fan-in scaled (PyTorch's default), which learns faster here (training/README.md).

    Inference:
        transcript_decoding (`str`): which head writes the transcript in `generate`. "attention": the decoder, after
            its task tokens. "ctc": the decoder writes the task tokens up to `<|transcribe|>`, the encoder's CTC head
            the transcript (greedy; it cannot loop, as SenseVoice); far better while the decoder is undertrained.
            With `num_beams` > 1 the CTC transcript comes from prefix beam search of that width instead.
        ctc_lm_weight (`float`), ctc_length_bonus (`float`): in that beam search, each token adds ctc_lm_weight *
            its log-probability under the model's token n-gram (`ngram_lm.safetensors`, when the folder has one)
            + ctc_length_bonus, which offsets the n-gram's pull towards short transcripts.
        no_speech_token_id (`int`), no_speech_logprob_threshold (`float`): Whisper's two-condition no-speech rule
            for CTC transcripts. A clip the decoder labels `<|nospeech|>` whose transcript's mean token
            log-probability (each token's at the frame that emitted it) is below the threshold gets an empty
            transcript: the length bonus otherwise writes stray tokens on silence. Both conditions, because a long
            chunk of mostly silence may be labelled `<|nospeech|>` and still hold confidently heard speech.
            None for either turns the rule off.

    Special ids follow `processing.task_tokens`: pad (also CTC blank) = 0, sot = 2, eot = 3, transcribe = 4,
    nospeech = 37.
    """

    model_type = "touchasp"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "decoder_layers",
        "num_attention_heads": "decoder_attention_heads",
    }

    def __init__(
        self,
        vocab_size: int = 1024,
        num_mel_bins: int = 80,
        d_model: int = 256,
        encoder_layers: int = 6,
        decoder_layers: int = 3,
        encoder_attention_heads: int = 4,
        decoder_attention_heads: int = 4,
        subsampling_channels: int = 128,
        conv_kernel_size: int = 15,
        max_target_positions: int = 448,
        rope_theta: float = 10000.0,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        n_routed_experts: int = 8,
        n_shared_experts: int = 1,
        moe_intermediate_size: int = 256,
        num_experts_per_tok: int | None = None,
        elastic_k_choices: list[int] | None = None,
        elastic_k_probs: list[float] | None = None,
        elastic_sample_scope: str = "layer",
        elastic_expert_pools: list[int] | None = None,
        expert_pool_size: int | None = None,
        elastic_seed: int = 0,
        norm_topk_prob: bool = True,
        router_aux_loss_coef: float = 0.0,
        hidden_act: str = "silu",
        ctc_weight: float = 0.3,
        label_smoothing: float = 0.1,
        task_loss_weight: float = 1.0,
        apply_spec_augment: bool = False,
        num_time_masks: int = 2,
        max_time_mask: int = 40,
        num_freq_masks: int = 2,
        max_freq_mask: int = 10,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-5,
        pad_token_id: int = 0,
        bos_token_id: int = 2,
        eos_token_id: int = 3,
        decoder_start_token_id: int = 2,
        transcribe_token_id: int | None = 4,
        transcript_decoding: str = "attention",
        ctc_lm_weight: float = 0.5,
        ctc_length_bonus: float = 2.5,
        no_speech_token_id: int | None = 37,
        no_speech_logprob_threshold: float | None = -1.0,
        tie_word_embeddings: bool = True,
        is_encoder_decoder: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.num_mel_bins = num_mel_bins
        self.d_model = d_model
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.encoder_attention_heads = encoder_attention_heads
        self.decoder_attention_heads = decoder_attention_heads
        self.subsampling_channels = subsampling_channels
        self.conv_kernel_size = conv_kernel_size
        self.max_target_positions = max_target_positions
        self.rope_theta = rope_theta
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.n_routed_experts = n_routed_experts
        self.n_shared_experts = n_shared_experts
        self.moe_intermediate_size = moe_intermediate_size
        self.elastic_k_choices = list(elastic_k_choices or range(1, min(4, n_routed_experts) + 1))
        self.elastic_k_probs = list(elastic_k_probs or _proportional_to_k(self.elastic_k_choices))
        self.num_experts_per_tok = num_experts_per_tok or max(self.elastic_k_choices)
        self.elastic_sample_scope = elastic_sample_scope
        self.elastic_expert_pools = list(elastic_expert_pools) if elastic_expert_pools else None
        self.expert_pool_size = expert_pool_size
        self.elastic_seed = elastic_seed
        self.norm_topk_prob = norm_topk_prob
        self.router_aux_loss_coef = router_aux_loss_coef
        self.hidden_act = hidden_act
        self.ctc_weight = ctc_weight
        self.label_smoothing = label_smoothing
        self.task_loss_weight = task_loss_weight
        self.apply_spec_augment = apply_spec_augment
        self.num_time_masks = num_time_masks
        self.max_time_mask = max_time_mask
        self.num_freq_masks = num_freq_masks
        self.max_freq_mask = max_freq_mask
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.transcribe_token_id = transcribe_token_id
        self.transcript_decoding = check_transcript_decoding(transcript_decoding)
        self.ctc_lm_weight = ctc_lm_weight
        self.ctc_length_bonus = ctc_length_bonus
        self.no_speech_token_id = no_speech_token_id
        self.no_speech_logprob_threshold = no_speech_logprob_threshold
        self._validate_elastic()
        _drop_custom_pipeline_when_registered(kwargs)
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            tie_word_embeddings=tie_word_embeddings,
            is_encoder_decoder=is_encoder_decoder,
            **kwargs,
        )

    def _validate_elastic(self) -> None:
        """Fail at construction, not mid-training, on an inconsistent elastic setup."""
        n = self.n_routed_experts
        if len(self.elastic_k_choices) != len(self.elastic_k_probs):
            raise ValueError(
                f"elastic_k_probs has {len(self.elastic_k_probs)} entries but elastic_k_choices has "
                f"{len(self.elastic_k_choices)}; give one probability per k."
            )
        if abs(sum(self.elastic_k_probs) - 1.0) > 1e-6 or min(self.elastic_k_probs) < 0:
            raise ValueError(f"elastic_k_probs must be non-negative and sum to 1, got {self.elastic_k_probs}.")
        for k in [*self.elastic_k_choices, self.num_experts_per_tok]:
            if not 1 <= k <= n:
                raise ValueError(f"every k must lie in 1..n_routed_experts={n}, got {k}.")
        for pool in [*(self.elastic_expert_pools or []), *([self.expert_pool_size] if self.expert_pool_size else [])]:
            if not 1 <= pool <= n:
                raise ValueError(f"expert pools must lie in 1..n_routed_experts={n}, got {pool}.")
        if self.elastic_sample_scope not in ("layer", "batch"):
            raise ValueError(f'elastic_sample_scope must be "layer" or "batch", got {self.elastic_sample_scope!r}.')

    @property
    def k_max(self) -> int:
        """Largest k the model was trained with."""
        return max(self.elastic_k_choices)


def _proportional_to_k(choices: list[int]) -> list[float]:
    """Default draw: P(k) proportional to k, so that large k (the deployment default) gets most training."""
    total = float(sum(choices))
    return [k / total for k in choices]


def _drop_custom_pipeline_when_registered(kwargs: dict) -> None:
    """A saved folder names its pipeline in `custom_pipelines` for processes that never imported this package;
    `pipeline()` then insists on trust_remote_code before it looks at registered pipelines. Where
    `import modeling_touchasp` has already registered TouchASPPipeline, the folder's copy is not needed."""
    if "custom_pipelines" not in kwargs:
        return
    from transformers.pipelines import PIPELINE_REGISTRY

    impl = PIPELINE_REGISTRY.supported_tasks["automatic-speech-recognition"]["impl"]
    if getattr(impl, "__name__", None) == "TouchASPPipeline":
        kwargs.pop("custom_pipelines")

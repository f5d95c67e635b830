"""TouchASP model: `import modeling_touchasp` registers the config, models, processor classes and the ASR pipeline
with the Transformers Auto classes; `save_touchasp` writes a model folder that also loads without this package."""

import copy
import inspect
import json
import os
import shutil

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedModel,
)
from transformers.pipelines import PIPELINE_REGISTRY

from processing.feature_extraction_touchasp import TouchASPFeatureExtractor
from processing.processing_touchasp import TouchASPProcessor
from processing.tokenization_touchasp import TouchASPTokenizer

from .configuration_touchasp import TouchASPConfig
from .modeling_touchasp import TouchASPForConditionalGeneration, TouchASPModel
from .pipeline_touchasp import TouchASPPipeline, default_max_new_tokens

ASR_TASK = "automatic-speech-recognition"

AutoConfig.register(TouchASPConfig.model_type, TouchASPConfig, exist_ok=True)
AutoModel.register(TouchASPConfig, TouchASPModel, exist_ok=True)
AutoModelForSpeechSeq2Seq.register(TouchASPConfig, TouchASPForConditionalGeneration, exist_ok=True)
AutoFeatureExtractor.register(TouchASPConfig, TouchASPFeatureExtractor, exist_ok=True)
AutoTokenizer.register(TouchASPConfig, tokenizer_class=TouchASPTokenizer, exist_ok=True)
AutoProcessor.register(TouchASPConfig, TouchASPProcessor, exist_ok=True)
TouchASPConfig.register_for_auto_class()
TouchASPModel.register_for_auto_class("AutoModel")
TouchASPForConditionalGeneration.register_for_auto_class("AutoModelForSpeechSeq2Seq")
TouchASPFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
TouchASPTokenizer.register_for_auto_class("AutoTokenizer")
TouchASPProcessor.register_for_auto_class("AutoProcessor")
# TouchASPPipeline serves the task for every model (it hands non-TouchASP models to the stock pipeline), so the
# stock entry is kept and only its class replaced. Not `register_pipeline`, which would log an overwrite warning
# on every import.
PIPELINE_REGISTRY.supported_tasks[ASR_TASK] = {**PIPELINE_REGISTRY.supported_tasks[ASR_TASK], "impl": TouchASPPipeline}


def save_touchasp(
    model: PreTrainedModel, processor: TouchASPProcessor, save_directory: str | os.PathLike
) -> None:
    """Write a self-contained model folder: weights, config.json, generation_config.json, processor and tokenizer
    files, and every code file, so that in a process that never imported this package
    `pipeline("automatic-speech-recognition", model=folder, trust_remote_code=True)` and the Auto classes
    (AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq, AutoProcessor, AutoFeatureExtractor, AutoTokenizer) work.

    The generation config keeps the model's `num_beams` (1, greedy, unless set) and has
    `default_max_new_tokens(config)` new tokens, replacing the ASR pipeline's stock 5 beams / 256 tokens. The model
    object itself is left unchanged.
    """
    model.save_pretrained(save_directory)
    processor.save_pretrained(save_directory)
    _drop_loading_options(os.path.join(save_directory, "tokenizer_config.json"))
    shutil.copy(inspect.getfile(TouchASPPipeline), save_directory)
    generation_config = copy.deepcopy(model.generation_config)
    generation_config.update(
        do_sample=False, num_beams=generation_config.num_beams or 1, max_new_tokens=default_max_new_tokens(model.config)
    )
    generation_config.save_pretrained(save_directory)

    config_path = os.path.join(save_directory, "config.json")
    with open(config_path, encoding="utf-8") as file:
        config = json.load(file)
    config["auto_map"].update(
        {
            "AutoModel": _code_reference(TouchASPModel),
            "AutoProcessor": _code_reference(TouchASPProcessor),
            "AutoFeatureExtractor": _code_reference(TouchASPFeatureExtractor),
            "AutoTokenizer": [None, _code_reference(TouchASPTokenizer)],
        }
    )
    # What `pipeline()` reads to load TouchASPPipeline from the folder; "pt" names Transformers Auto classes.
    config["custom_pipelines"] = {
        ASR_TASK: {"impl": _code_reference(TouchASPPipeline), "pt": ["AutoModelForSpeechSeq2Seq"], "type": "multimodal"}
    }
    with open(config_path, "w", encoding="utf-8") as file:
        json.dump(config, file, indent=2, sort_keys=True)
        file.write("\n")


def _drop_loading_options(tokenizer_config_path: str) -> None:
    """Remove `local_files_only`, which Transformers saves from the call that loaded the tokenizer (true under
    HF_HUB_OFFLINE=1): how this process loaded the files is not a property of the folder."""
    with open(tokenizer_config_path, encoding="utf-8") as file:
        tokenizer_config = json.load(file)
    if tokenizer_config.pop("local_files_only", None) is not None:
        with open(tokenizer_config_path, "w", encoding="utf-8") as file:
            json.dump(tokenizer_config, file, indent=2, sort_keys=True, ensure_ascii=False)
            file.write("\n")


def _code_reference(cls: type) -> str:
    """`module.Class` as auto_map writes it: the module's file name inside the flat model folder."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


__all__ = [
    "TouchASPConfig",
    "TouchASPModel",
    "TouchASPForConditionalGeneration",
    "TouchASPPipeline",
    "save_touchasp",
]

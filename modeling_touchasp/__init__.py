"""TouchASP model: `import modeling_touchasp` registers the config and models with the Transformers Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq

from .configuration_touchasp import TouchASPConfig
from .modeling_touchasp import TouchASPForConditionalGeneration, TouchASPModel

AutoConfig.register(TouchASPConfig.model_type, TouchASPConfig, exist_ok=True)
AutoModel.register(TouchASPConfig, TouchASPModel, exist_ok=True)
AutoModelForSpeechSeq2Seq.register(TouchASPConfig, TouchASPForConditionalGeneration, exist_ok=True)
TouchASPConfig.register_for_auto_class()
TouchASPModel.register_for_auto_class("AutoModel")
TouchASPForConditionalGeneration.register_for_auto_class("AutoModelForSpeechSeq2Seq")

__all__ = ["TouchASPConfig", "TouchASPModel", "TouchASPForConditionalGeneration"]

from ml.models.attention_unet import AttentionUNet
from ml.models.registry import MODELS, create_model

__all__ = ["MODELS", "AttentionUNet", "create_model"]

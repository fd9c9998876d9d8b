"""Model families; importing this module registers every builder."""

from vidrnn.models.attention_lstm import ConvRNNClassifier, SoftAttentionLSTM, TemporalAttentionLSTM
from vidrnn.models.encoder_forecaster import EncoderForecaster
from vidrnn.models.lrcn import LRCN, DeepLSTM
from vidrnn.models.snippets import (AveragePooling, ConvPooling, LatePooling, LocalPooling, SlowPooling,
                                    TimeDomainConv)

__all__ = ["LRCN", "DeepLSTM", "ConvPooling", "LatePooling", "SlowPooling", "LocalPooling", "TimeDomainConv",
           "AveragePooling", "EncoderForecaster", "SoftAttentionLSTM", "TemporalAttentionLSTM", "ConvRNNClassifier"]

"""Model families; importing this module registers every builder."""

from vidrnn.models.gru_rcn import ConvRNNClassifier
from vidrnn.models.spatial_attention import SoftAttentionLSTM
from vidrnn.models.temporal_attention import TemporalAttentionLSTM
from vidrnn.models.encoder_forecaster import EncoderForecaster
from vidrnn.models.lrcn import LRCN, DeepLSTM
from vidrnn.models.snippets import (AveragePooling, ConvPooling, LatePooling, LocalPooling, SlowPooling,
                                    TimeDomainConv)

__all__ = ["LRCN", "DeepLSTM", "ConvPooling", "LatePooling", "SlowPooling", "LocalPooling", "TimeDomainConv",
           "AveragePooling", "EncoderForecaster", "SoftAttentionLSTM", "TemporalAttentionLSTM", "ConvRNNClassifier"]

"""Model-agnostic blocks: frame encoders, recurrent (and convolutional recurrent) cells, temporal pooling."""

from vidrnn.layers.cells import (ConvGRU, ConvGRUCell, ConvLSTM, ConvLSTMCell, LSTMLayer, PeepholeLSTM,
                                 PeepholeLSTMCell, StackedRNN, TrajGRU, TrajGRUCell)
from vidrnn.layers.encoders import FrameEncoder, TinyCNN, create_frame_encoder
from vidrnn.layers.pooling import temporal_max, windowed_max

__all__ = ["LSTMLayer", "PeepholeLSTM", "PeepholeLSTMCell", "StackedRNN", "FrameEncoder", "TinyCNN",
           "create_frame_encoder", "temporal_max", "windowed_max", "ConvLSTMCell", "ConvLSTM", "ConvGRUCell", "ConvGRU",
           "TrajGRUCell", "TrajGRU"]

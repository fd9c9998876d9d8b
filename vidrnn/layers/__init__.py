"""Model-agnostic blocks: frame encoders, fully connected and convolutional recurrent cells,
temporal pooling, attention."""

from vidrnn.layers.conv_cells import ConvGRU, ConvGRUCell, ConvLSTM, ConvLSTMCell, TrajGRU, TrajGRUCell
from vidrnn.layers.encoders import FrameEncoder, TinyCNN, create_frame_encoder
from vidrnn.layers.pooling import temporal_max, windowed_max
from vidrnn.layers.rnn_cells import (GRU, LSTM, RNN, GRUCell, LSTMCell, LSTMLayer, PeepholeLSTM, PeepholeLSTMCell,
                                     RNNCell, StackedRNN)

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU", "LSTMLayer", "PeepholeLSTM", "PeepholeLSTMCell", "StackedRNN", "FrameEncoder", "TinyCNN",
           "create_frame_encoder", "temporal_max", "windowed_max", "ConvLSTMCell", "ConvLSTM", "ConvGRUCell", "ConvGRU",
           "TrajGRUCell", "TrajGRU"]

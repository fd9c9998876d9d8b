"""Model families, one file per paper; importing this package registers every builder.

* :mod:`~vidrnn.models.lrcn` -- LRCN (Donahue et al. 2015) and the deep LSTM of Ng et al. 2015
* :mod:`~vidrnn.models.snippets` -- Conv/Late/Slow/Local pooling and Time-Domain Convolution (Ng et al. 2015)
* :mod:`~vidrnn.models.spatial_attention` -- soft and hard spatial attention LSTM (Sharma et al. 2015; Xu et al. 2015)
* :mod:`~vidrnn.models.temporal_attention` -- MultiLSTM-style temporal attention (Yeung et al. 2017)
* :mod:`~vidrnn.models.gru_rcn` -- GRU-RCN and ConvLSTM classifiers over CNN maps (Ballas et al. 2016)
* :mod:`~vidrnn.models.encoder_forecaster` -- ConvLSTM/ConvGRU/TrajGRU/FC-LSTM encoder-forecasters (Shi et al. 2015, 2017)
* :mod:`~vidrnn.models.char_lm` -- character-level RNN/LSTM/GRU language models (char-rnn; Karpathy et al. 2015)
* :mod:`~vidrnn.models.show_attend_tell` -- Show, Attend and Tell image captioning, soft and hard attention (Xu et al. 2015)
* :mod:`~vidrnn.models.captioners` -- the captioner base, Show and Tell (baseline), S2VT and a temporal-attention video captioner
* :mod:`~vidrnn.models.cnn3d` -- 3D CNNs: C3D (Tran et al. 2015), R3D/MC3/R(2+1)D-18 (Tran et al. 2018), P3D (Qiu et al. 2017)
* :mod:`~vidrnn.models.fusion_template` -- the template network with variational DropPath (Zhou et al. 2020)
* :mod:`~vidrnn.models.two_stream` -- flow streams of LRCN and the deep LSTM / Conv Pooling, late fusion (Donahue et al. 2015; Ng et al. 2015)
* :mod:`~vidrnn.models.extrapolation` -- persistence and pysteps extrapolation baselines for nowcasting
"""

from vidrnn.models.base import ClassifierOutput
from vidrnn.models.captioners import S2VT, ShowAndTell, TemporalAttentionCaptioner
from vidrnn.models.char_lm import CharLM
from vidrnn.models.cnn3d import C3D, P3DResNet, VideoResNet
from vidrnn.models.encoder_forecaster import EncoderForecaster
from vidrnn.models.fusion_template import FusionTemplate
from vidrnn.models.gru_rcn import ConvRNNClassifier
from vidrnn.models.lrcn import LRCN, DeepLSTM
from vidrnn.models.show_attend_tell import ShowAttendTell
from vidrnn.models.snippets import (AveragePooling, ConvPooling, LatePooling, LocalPooling, SlowPooling,
                                    TimeDomainConv)
from vidrnn.models.spatial_attention import SpatialAttentionLSTM
from vidrnn.models.temporal_attention import TemporalAttentionLSTM
from vidrnn.models.two_stream import LateFusion

__all__ = ["ClassifierOutput", "LRCN", "DeepLSTM", "ConvPooling", "LatePooling", "SlowPooling", "LocalPooling",
           "TimeDomainConv", "AveragePooling", "EncoderForecaster", "SpatialAttentionLSTM", "TemporalAttentionLSTM",
           "ConvRNNClassifier", "CharLM", "ShowAttendTell",
           "ShowAndTell", "S2VT", "TemporalAttentionCaptioner", "C3D", "VideoResNet", "P3DResNet",
           "FusionTemplate", "LateFusion"]

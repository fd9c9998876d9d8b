"""Decoding (PyAV, TorchCodec) and frame samplers."""

from vidrnn.io.decode import DecodeLimits, VideoInfo, VideoReader, available_backends, probe_video, read_video
from vidrnn.io.sampling import (DenseSampler, FixedRateSampler, FrameSampler, SegmentSampler, UniformSampler,
                                build_sampler)

__all__ = ["VideoInfo", "VideoReader", "DecodeLimits", "available_backends", "probe_video", "read_video", "FrameSampler",
           "UniformSampler", "SegmentSampler", "DenseSampler", "FixedRateSampler", "build_sampler"]

"""Decoding, frame sampling and writing of videos."""

from vidrnn.io.decode import VideoInfo, VideoReader, available_backends, probe_video, read_video

__all__ = ["VideoInfo", "VideoReader", "available_backends", "probe_video", "read_video"]

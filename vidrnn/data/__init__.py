"""Datasets and the LightningDataModule: annotation readers, clip datasets, the embedded
Moving Digits dataset, feature caches and clip transforms."""

from vidrnn.data.datamodule import VideoDataModule, resolve_annotations
from vidrnn.data.digits import MovingDigits
from vidrnn.data.features import FeatureDataset, extract_features, load_cache_meta
from vidrnn.data.transforms import ClipTransformConfig, build_clip_transform
from vidrnn.data.video_folder import (VideoClipDataset, VideoSample, collate_clips, read_annotation_list,
                                      read_hmdb51_split, read_kinetics_csv, read_ucf101_split, scan_video_folder)

__all__ = ["VideoDataModule", "resolve_annotations", "MovingDigits", "FeatureDataset", "extract_features",
           "load_cache_meta", "ClipTransformConfig", "build_clip_transform", "VideoClipDataset", "VideoSample",
           "collate_clips", "read_annotation_list", "read_hmdb51_split", "read_kinetics_csv", "read_ucf101_split",
           "scan_video_folder"]

"""Datasets and the LightningDataModules: annotation readers, clip datasets, the embedded
digit datasets, feature caches, clip transforms; Moving MNIST and radar sequences for
forecasting."""

from vidrnn.data.annotations import (VideoSample, read_annotation_list, read_charades_csv, read_hmdb51_split,
                                     read_kinetics_csv, read_ucf101_split, scan_video_folder)
from vidrnn.data.clip_dataset import VideoClipDataset, collate_clips
from vidrnn.data.datamodule import VideoDataModule, resolve_annotations
from vidrnn.data.digits import DistractorDigits, MovingDigits, MultiLabelDigits
from vidrnn.data.features import FeatureDataset, load_cache_meta
from vidrnn.data.forecast_datamodule import ForecastDataModule
from vidrnn.data.moving_mnist import MovingMNIST, MovingMNISTNpy, load_mnist_digits, read_idx
from vidrnn.data.radar import RadarWindows, load_radar_sequence
from vidrnn.data.transforms import ClipTransformConfig, build_clip_transform

__all__ = ["VideoDataModule", "resolve_annotations", "MovingDigits", "DistractorDigits", "MultiLabelDigits",
           "FeatureDataset", "load_cache_meta", "ClipTransformConfig", "build_clip_transform", "VideoClipDataset",
           "VideoSample", "collate_clips", "read_annotation_list", "read_hmdb51_split", "read_kinetics_csv",
           "read_ucf101_split", "read_charades_csv", "scan_video_folder", "ForecastDataModule", "MovingMNIST",
           "MovingMNISTNpy", "load_mnist_digits", "read_idx", "RadarWindows", "load_radar_sequence"]

"""Datasets and the LightningDataModules: annotation readers, clip datasets, the embedded
Moving Digits dataset, feature caches, clip transforms; Moving MNIST and radar sequences for
forecasting."""

from vidrnn.data.datamodule import VideoDataModule, resolve_annotations
from vidrnn.data.digits import MovingDigits
from vidrnn.data.forecast_datamodule import ForecastDataModule
from vidrnn.data.features import FeatureDataset, extract_features, load_cache_meta
from vidrnn.data.moving_mnist import MovingMNIST, MovingMNISTNpy, load_mnist_digits, read_idx
from vidrnn.data.radar import (RadarWindows, dbz_to_rainrate, load_radar_sequence, rainrate_to_dbz, read_fmi_pgm,
                               read_knmi_hdf5)
from vidrnn.data.transforms import ClipTransformConfig, build_clip_transform
from vidrnn.data.video_folder import (VideoClipDataset, VideoSample, collate_clips, read_annotation_list,
                                      read_hmdb51_split, read_kinetics_csv, read_ucf101_split, scan_video_folder)

__all__ = ["VideoDataModule", "resolve_annotations", "MovingDigits", "FeatureDataset", "extract_features",
           "load_cache_meta", "ClipTransformConfig", "build_clip_transform", "VideoClipDataset", "VideoSample",
           "collate_clips", "read_annotation_list", "read_hmdb51_split", "read_kinetics_csv", "read_ucf101_split",
           "scan_video_folder", "ForecastDataModule", "MovingMNIST", "MovingMNISTNpy", "load_mnist_digits", "read_idx",
           "RadarWindows", "dbz_to_rainrate", "rainrate_to_dbz", "load_radar_sequence", "read_fmi_pgm",
           "read_knmi_hdf5"]

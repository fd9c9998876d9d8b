"""Pictures of model outputs: forecast grids/GIFs, per-lead-time plots, attention overlays
(consume tensors only)."""

from vidrnn.viz.attention import attention_frames, overlay_heatmap, write_attention_video
from vidrnn.viz.forecast import forecast_gif, forecast_grid, lead_time_plot

__all__ = ["forecast_grid", "forecast_gif", "lead_time_plot", "overlay_heatmap", "attention_frames",
           "write_attention_video"]

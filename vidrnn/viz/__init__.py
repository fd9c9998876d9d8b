"""Pictures of model outputs: forecast grids/GIFs and per-lead-time plots (consume tensors only)."""

from vidrnn.viz.forecast import forecast_gif, forecast_grid, lead_time_plot

__all__ = ["forecast_grid", "forecast_gif", "lead_time_plot"]

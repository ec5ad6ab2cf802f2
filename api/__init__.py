"""fleet-monitor HTTP API: fleet status, trends, alarms, heatmaps and KPIs over TimescaleDB."""

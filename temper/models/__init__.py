"""The model plaza: catalogue, providers, routing and metering."""

"""Stream definitions (data, not code): one YAML file a stream. Shipped as sqquid_etl.streams."""

from picsaris_pipeline.sensors.bucket import bucket_sensor

__all__ = ["bucket_sensor"]

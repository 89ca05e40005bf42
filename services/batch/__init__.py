"""``crackseg predict``: segment and measure a folder of photos, locally or through a running predictor."""

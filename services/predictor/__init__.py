"""The crackseg predictor: a KServe custom model server plus the original crackseg HTTP API."""

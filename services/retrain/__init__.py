"""The closed retraining loop: count feedback, retrain, gate, register, roll — locally and on Kubernetes.

``trigger`` (the CronJob's program) must stay torch-free; ``run`` (the Job's program) imports the ML core lazily.
"""

"""The peers a user would pick instead of fanout on one machine: Celery and multiprocessing."""

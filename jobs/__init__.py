"""fleet-monitor stream processing jobs (PyFlink 2.x).

Every job reads raw JSON-lines events from a source given as a parameter (Kafka in production,
files in tests and the local run), parses them against `contracts`, and writes its outputs through
Flink's checkpointed filesystem sink; `jobs.loader` upserts committed output files into the
database and publishes alerts to Kafka. See jobs/README section in the repository README.
"""

JOB_NAMES = ("aggregates", "alarms", "inactivity", "kpis")

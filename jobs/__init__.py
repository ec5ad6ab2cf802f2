"""fleet-monitor stream processing jobs (PyFlink 2.x).

Every job reads raw JSON-lines events from the Kafka topics of contracts.topics, parses them
against `contracts`, and writes its tables to the store topics, alarm records to the alerts topic
and rejected events to the dead-letter topic, exactly once (Kafka transactions committed with each
checkpoint); `storage.loader` upserts what they commit into the database. See docs/jobs.md.
"""

JOB_NAMES = ("aggregates", "alarms", "inactivity", "kpis")

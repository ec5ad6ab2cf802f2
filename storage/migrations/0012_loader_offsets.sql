-- Where the loader (storage.loader) stands in each topic partition it reads. The rows of a batch
-- and the offsets after it commit in one transaction, so after any crash the loader resumes
-- exactly behind what the database holds: nothing lost, nothing applied twice. `records` counts
-- what was loaded (the local run's live summary reads it instead of counting big tables).
CREATE TABLE IF NOT EXISTS loader_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    records     bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Replaced by loader_offsets: the jobs no longer stage output files.
DROP TABLE IF EXISTS job_output_files;

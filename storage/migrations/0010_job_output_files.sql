-- Output files of the Flink jobs already merged into the tables (jobs.loader). Flink's
-- filesystem sink commits a file only with a checkpoint; recording each loaded file in the same
-- transaction as its rows makes every committed file count exactly once, also after a restart.
CREATE TABLE IF NOT EXISTS job_output_files (
    path       text        PRIMARY KEY,
    target     text        NOT NULL,
    rows       bigint      NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now()
);

-- Every claim and outcome changes indexed columns (status, due_at), so no
-- job update is HOT: each leaves dead entries in the due index that later
-- claims walk until VACUUM removes them. Vacuum the table after a fixed
-- number of dead rows rather than a fraction of its size, so a long job
-- history (NOTES_JOB_RETENTION_HOURS) does not put it off.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 2000
);

-- Hosts a job holds its command for because they were offline when their turn came: the host's
-- relay reads its rows when the agent says hello and wakes those jobs. A row may outlive its wait
-- (a wake for a host no longer waiting is ignored); a finished job deletes its rows.
CREATE TABLE job_waits (
  host_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  PRIMARY KEY (host_id, job_id)
) WITHOUT ROWID;
CREATE INDEX job_waits_by_job ON job_waits(job_id);

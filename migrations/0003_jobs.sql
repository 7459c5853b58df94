-- The record of every job: who started what, on how many hosts. Live state is in the job's JobCoordinator.
CREATE TABLE jobs (
  job_id TEXT PRIMARY KEY,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  command_type TEXT NOT NULL,
  host_count INTEGER NOT NULL
);
-- Newest first, with job_id breaking ties for a stable cursor.
CREATE INDEX jobs_by_created ON jobs(created_at DESC, job_id DESC);

-- Enrolment attempts per source address in the current fixed window (bounded: rows older than a
-- window are deleted as attempts come in).
CREATE TABLE enrollment_attempts (
  address TEXT PRIMARY KEY,
  window_start INTEGER NOT NULL,
  attempts INTEGER NOT NULL
);
CREATE INDEX enrollment_attempts_by_window ON enrollment_attempts(window_start);

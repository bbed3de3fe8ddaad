-- Version 2: when each tenant's setup was last completed.
--
-- A tenant that is set up but has not had a heartbeat yet needs a start time
-- for the heartbeat-age gauge; without one it counted as "never", which read
-- as 1970 and set off the staleness alert after every new setup.
ALTER TABLE integrations ADD COLUMN setup_done_at INTEGER;

-- Rows set up before this version: their last update is the closest record
-- there is of when setup finished (it can only be later, never earlier).
UPDATE integrations SET setup_done_at = updated_at WHERE setup_done = 1;

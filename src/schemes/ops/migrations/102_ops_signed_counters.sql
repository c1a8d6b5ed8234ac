-- The highest counters a device has signed in any statement the node accepted (a sync report or a
-- withdraw confirmation). A genuine TA's counters only grow, and every payment it made carries an
-- index at most its payment counter at any later signature; a statement below either is a
-- restored (rolled-back) or cloned state.

ALTER TABLE ops_devices ADD COLUMN signed_j bigint NOT NULL DEFAULT 0 CHECK (signed_j >= 0);
ALTER TABLE ops_devices ADD COLUMN signed_collect_seq bigint NOT NULL DEFAULT 0 CHECK (signed_collect_seq >= 0);

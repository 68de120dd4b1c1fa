-- The simulated grid sums the slots of a node's live contracts on every
-- capacity read and every deploy. This index covers that sum, so it reads
-- only the live contracts' entries and never the table.
CREATE INDEX sim_contracts_slots_in_use ON sim_contracts (node_id, state, slots);

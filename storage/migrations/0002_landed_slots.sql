-- A node's counter of slots that reservations handed over to the grid's
-- figures. A capacity check reads it before it reads the grid and subtracts
-- whatever landed since, so a slow grid read can never overbook the node.
-- Only differences matter, so the old epoch's value carries over.
ALTER TABLE nodes RENAME COLUMN epoch TO landed_slots;
